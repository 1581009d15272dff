"""The root `tutor` command. Each group of sub-commands lives in its own module, which
imports heavy libraries inside its functions, so `tutor --help` stays fast."""

from __future__ import annotations

import importlib
import logging
import os
import warnings

import typer

app = typer.Typer(name="tutor", help="A course tutor: ingest course PDFs, serve answers with citations, "
                  "answer MCQs, train and evaluate the model.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
eval_app = typer.Typer(help="Evaluate models: MCQ accuracy, preferences, perplexity, comparisons.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")

# Each module defines register(app, eval_app) and adds its commands.
COMMAND_MODULES = [
    "cli.data_commands",
    "cli.eval_answers_commands",
    "cli.eval_retrieval_commands",
    "cli.ingest_commands",
    "cli.mcq_commands",
    "cli.report_commands",
    "cli.quant_commands",
    "cli.serve_commands",
    "cli.train_commands",
]

# Libraries' messages a user of `tutor` cannot act on: torchao's optional kernels that failed to load,
# torch's _pytree deprecations raised inside torchao, the kernels hub, bitsandbytes' per-call cast
# notices, transformers' generation-flag advice, httpx's line per request to a generation server,
# transformers' notice that TRL and PEFT read a renamed model property, GPTQModel's advice to run a
# free-threaded Python. Quieted here, at the edge, not in library code.
QUIET_LOGGERS = ("torchao", "torch.utils._pytree", "kernels", "bitsandbytes", "httpx")
QUIET_WARNING_MODULES = (r"torchao(\..*)?", r"torch\.utils\._pytree", r"kernels(\..*)?",
                         r"bitsandbytes(\..*)?")
QUIET_WARNING_MESSAGES = (r"`is_gradient_checkpointing` is deprecated",)


def quiet_libraries() -> None:
    """Hide the library warnings and log lines listed above (``--verbose`` shows them)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers first logs
    os.environ.setdefault("GPTQMODEL_DISABLE_GIL_WARNING", "1")  # read when gptqmodel is imported
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in QUIET_WARNING_MODULES:
        warnings.filterwarnings("ignore", module=module)
    for message in QUIET_WARNING_MESSAGES:
        warnings.filterwarnings("ignore", message=message)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    # Before torch loads OpenMP: spinning worker threads starve each other when other processes share
    # the cores (measured on 2 busy cores: 0.5 tokens/s spinning, 7.5 tokens/s passive).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from engine.runtime.gptq import defer_torchao

    defer_torchao()  # before transformers loads a model: torchao only for a GPTQ folder
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        quiet_libraries()


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app, eval_app)

if __name__ == "__main__":
    app()
