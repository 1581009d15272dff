"""The offline half of the tutor: preference data, cleaning, SFT and DPO on TRL, merge and metrics.

Public entry points other packages call (heavy imports stay inside them):

- ``training.sft.run_sft(recipe) -> Path``: the adapter folder of an SFT run.
- ``training.dpo.run_dpo(recipe) -> Path``: the adapter folder of a DPO run.
- ``training.merge.merge_adapter(adapter_dir, out_dir) -> Path``: a merged full model folder.
"""
