"""Preference metrics from hand-made log-probabilities, and tokenization as TRL does it."""

from __future__ import annotations

import pytest

from engine.runtime.pairs import encode_pair
from training.errors import TrainingError
from training.metrics import preference_metrics


def test_preference_metrics_from_known_log_probabilities():
    policy = [(-10.0, -12.0), (-5.0, -4.0), (-8.0, -8.0)]
    reference = [(-11.0, -11.0), (-6.0, -3.0), (-8.0, -9.0)]
    m = preference_metrics(policy, reference, beta=0.5)
    # rewards: chosen 0.5*(1, 1, 0) ; rejected 0.5*(-1, -1, 1) -> margins (1, 1, -0.5)
    assert m.reward_accuracy == pytest.approx(2 / 3)
    assert m.mean_margin == pytest.approx(0.5)
    assert (m.chosen_reward, m.rejected_reward) == (pytest.approx(1 / 3), pytest.approx(-1 / 6))
    assert m.policy_alignment == pytest.approx(1 / 3)  # only the first pair: -10 > -12
    assert m.reference_alignment == pytest.approx(1 / 3)  # only the last pair: -8 > -9
    assert m.chosen_logp == pytest.approx(-23 / 3) and m.reference_rejected_logp == pytest.approx(-23 / 3)


def test_policy_equal_to_reference_has_zero_reward_accuracy():
    scores = [(-1.0, -2.0), (-3.0, -1.0)]
    m = preference_metrics(scores, scores, beta=0.1)
    assert (m.reward_accuracy, m.mean_margin, m.policy_alignment) == (0.0, 0.0, 0.5)


def test_mismatched_inputs_are_refused():
    with pytest.raises(TrainingError):
        preference_metrics([(-1.0, -2.0)], [], beta=0.1)


@pytest.mark.integration
def test_encode_pair_splits_prompt_and_answers_at_the_chat_template(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    row = {
        "prompt": [{"role": "user", "content": "2+2?"}],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "five"}],
    }
    prompt, chosen, rejected = encode_pair(tokenizer, row)
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(chosen).startswith("4<|im_end|>")
    assert tokenizer.decode(rejected).startswith("five<|im_end|>")
    plain = encode_pair(tokenizer, {"prompt": "Q: 2+2? A:", "chosen": " 4", "rejected": " 5"})
    assert tokenizer.decode(plain[1]) == " 4<|im_end|>"
