"""`tutor data grounded`: build the grounded-answer SFT and DPO data from SQuAD and CoQA."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

logger = logging.getLogger(__name__)

data_app = typer.Typer(help="Build training data.", no_args_is_help=True)
SHARED = Path("..") / "shared" / "data" / "grounded"


def grounded_sets(squad: Path | None, coqa: Path | None) -> tuple[Path | None, Path | None]:
    """The SQuAD and CoQA files a command reads: both shared sets when neither is given."""
    if squad is None and coqa is None:
        return SHARED / "squad.jsonl", SHARED / "coqa.jsonl"
    return squad, coqa


def grounded(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for sft_*.jsonl, dpo_*.jsonl and the report."),
    squad: Path | None = typer.Option(None, help="SQuAD rows {id, title, context, question, answers}. "
                                      "Without --squad and --coqa, both sets of ../shared/data/grounded."),
    coqa: Path | None = typer.Option(None, help="CoQA stories {id, source, story, turns}."),
    passages: int = typer.Option(4, help="Sources per prompt, as the server's TUTOR_TOP_K."),
    source_sentences: int = typer.Option(3, min=0, help="Key sentences shown per source, as the server's "
                                         "TUTOR_SOURCE_SENTENCES (0: whole passages)."),
    dev_fraction: float = typer.Option(0.1, help="Share of rows kept for dev, whole articles and stories."),
    abstention_share: float = typer.Option(0.05, help="Share of questions that also give a 'not covered' "
                                           "example from unrelated passages."),
    answer_style: str = typer.Option("sentence", help="Targets: 'sentence' (the gold note's sentence that "
                                     "states the answer, cited) or 'span' (the reference answer, cited)."),
    seed: int = typer.Option(0, help="Seed of the split, the distractor ties and the source positions."),
    on_policy: int = typer.Option(0, min=0, help="Answer this many train prompts with --model: wrong answers "
                                  "become rejected ones (dpo_on_policy_train.jsonl), right ones cited SFT "
                                  "targets (sft_self_train.jsonl). Slow on a CPU."),
    model: str | None = typer.Option(None, help="The model answering --on-policy prompts (TUTOR_MODEL)."),
    short_in_prompt: bool = typer.Option(False, help="Show the reference answer as the reader's short answer "
                                         "in each prompt, for a model served with TUTOR_SHORT_IN_PROMPT."),
) -> None:
    """Grounded SFT examples and DPO pairs in the prompt format serving sends, cleaned and split."""
    from cli.ingest_commands import build_settings
    from training.data.grounded import BuildConfig, build_grounded_data
    from training.errors import TrainingError

    runtime = None
    if on_policy:
        from app.resources import open_runtime

        runtime = open_runtime(build_settings(model=model))  # on-policy answers: what the server generates
    try:
        config = BuildConfig(passages=passages, dev_fraction=dev_fraction, abstention_share=abstention_share,
                             source_sentences=source_sentences, answer_style=answer_style,
                             short_in_prompt=short_in_prompt, seed=seed)
        squad, coqa = grounded_sets(squad, coqa)
        report = build_grounded_data(out, squad=squad, coqa=coqa, config=config, runtime=runtime,
                                     on_policy=on_policy)
    except TrainingError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo(report.cleaning.to_markdown())
    for split, counts in report.kinds.items():
        typer.echo(f"{split}: " + ", ".join(f"{kind} {count}" for kind, count in counts.items()))
    logger.info("Wrote %s and the cleaning report in %s.", ", ".join(report.files.values()), out)


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    data_app.command("grounded")(grounded)
