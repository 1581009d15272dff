"""`tutor train sft|dpo|sweep|reader|yes-no`, `tutor merge`, `tutor eval preferences`: wrappers over
`training/`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

logger = logging.getLogger(__name__)

train_app = typer.Typer(help="Train adapters from YAML recipes: SFT, DPO, and sweeps.", no_args_is_help=True)

SET_HELP = (
    "Override a recipe value, key=value (dotted for sections, e.g. adapter.r=8); repeatable. "
    "Precedence: defaults < recipe < these."
)


def _overrides(settings: list[str], output_dir: str | None, max_steps: int | None) -> list[str]:
    extra = [f"output_dir={output_dir}"] if output_dir else []
    extra += [f"max_steps={max_steps}"] if max_steps is not None else []
    return [*settings, *extra]


def _run(task: str, recipe_path: Path, overrides: list[str]) -> None:
    from app.settings import get_settings
    from training.errors import TrainingError
    from training.recipes import load_recipe

    try:
        recipe = load_recipe(recipe_path, overrides, task=task)
        recipe.data_dir = recipe.data_dir or str(get_settings().data_dir)
        if task == "sft":
            from training.sft import run_sft

            adapter = run_sft(recipe)
        else:
            from training.dpo import run_dpo

            adapter = run_dpo(recipe)
    except TrainingError as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    typer.echo(f"Adapter: {adapter}\nSummary: {recipe.output_path / 'summary.md'}")


@train_app.command("sft")
def train_sft(
    recipe: Path = typer.Argument(..., help="A YAML recipe, e.g. configs/sft.yaml."),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    output_dir: str | None = typer.Option(None, help="Where the run writes (same as --set output_dir=...)."),
    max_steps: int | None = typer.Option(
        None, help="Stop after this many updates (same as --set max_steps=...)."
    ),
) -> None:
    """Supervised fine-tuning of a LoRA/DoRA/QLoRA adapter."""
    _run("sft", recipe, _overrides(set_, output_dir, max_steps))


@train_app.command("dpo")
def train_dpo(
    recipe: Path = typer.Argument(..., help="A YAML recipe, e.g. configs/dpo.yaml."),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    output_dir: str | None = typer.Option(None, help="Where the run writes (same as --set output_dir=...)."),
    max_steps: int | None = typer.Option(
        None, help="Stop after this many updates (same as --set max_steps=...)."
    ),
) -> None:
    """DPO (sigmoid, IPO, hinge, conservative) of a LoRA/DoRA/QLoRA adapter; resumes when it can."""
    _run("dpo", recipe, _overrides(set_, output_dir, max_steps))


@train_app.command("sweep")
def train_sweep(sweep: Path = typer.Argument(..., help="A sweep file, e.g. configs/sweep.yaml.")) -> None:
    """Run a grid of recipes on a data subset; writes a table ranked by validation reward accuracy."""
    from training.errors import TrainingError
    from training.sweep import load_sweep, run_sweep

    try:
        spec = load_sweep(sweep)
        ranked = run_sweep(spec)
    except TrainingError as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    typer.echo((Path(spec.output_dir) / "results.md").read_text(encoding="utf-8") if ranked else "No runs.")


def merge(
    adapter: Path = typer.Argument(
        ..., help="The adapter folder a training run wrote (<output_dir>/adapter)."
    ),
    out: Path = typer.Option(..., "--out", help="The merged model folder to create."),
    base: str | None = typer.Option(None, help="Base model (folder or .gguf); default: the adapter's own."),
) -> None:
    """Merge an adapter into its base model: a full folder that `tutor serve --model DIR` loads."""
    from app.settings import get_settings
    from engine.runtime import ModelNotFoundError
    from training.errors import TrainingError
    from training.merge import merge_adapter

    try:
        folder = merge_adapter(adapter, out, base=base, data_dir=get_settings().data_dir)
    except (TrainingError, ModelNotFoundError) as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    typer.echo(f"Merged model: {folder}")


def eval_preferences(
    model: str = typer.Argument(
        ..., help="An adapter folder, an HF model folder or a .gguf file; 'default' for the packaged model."
    ),
    data: Path = typer.Argument(
        ..., help="Preference pairs in any supported format (e.g. a run's data/test.jsonl)."
    ),
    reference: str | None = typer.Option(
        None,
        help="Reference model; default: the adapter's base with the adapter disabled, or the packaged model.",
    ),
    beta: float = typer.Option(0.1, help="DPO beta that scales rewards."),
    limit: int | None = typer.Option(None, help="Score only the first N pairs."),
    batch_size: int = typer.Option(4, help="Sequences per forward pass."),
    out: Path | None = typer.Option(None, help="Also write the metrics to this JSON file."),
    chat: bool = typer.Option(
        True, help="Frame plain-text prompts with the chat template (as training does)."
    ),
) -> None:
    """Reward accuracy, margins, rewards, log-probabilities, policy and reference alignment."""
    from app.settings import get_settings
    from engine.runtime import ModelNotFoundError
    from training.errors import TrainingError
    from training.metrics import evaluate_preferences

    try:
        metrics = evaluate_preferences(
            None if model == "default" else model,
            data,
            reference,
            beta=beta,
            limit=limit,
            batch_size=batch_size,
            data_dir=get_settings().data_dir,
            chat=chat,
        )
    except (TrainingError, ModelNotFoundError) as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    text = json.dumps(metrics.to_dict(), indent=2)
    if out:
        out.write_text(text, encoding="utf-8")
    typer.echo(text)


@train_app.command("reader")
def train_reader(
    out: Path = typer.Option(Path("engine/shipped/reader"), "--out", "-o", help="Folder for "
                             "reader.safetensors and reader.json (default: the shipped reader's)."),
    squad: Path | None = typer.Option(None, help="SQuAD rows {id, title, context, question, answers}. "
                                      "Without --squad and --coqa, both sets of ../shared/data/grounded."),
    coqa: Path | None = typer.Option(None, help="CoQA stories {id, source, story, turns}."),
    epochs: float = typer.Option(3.0, help="Passes over the train examples."),
    rank: int = typer.Option(32, help="Rank of the adapter on each encoder linear layer."),
    learning_rate: float = typer.Option(8e-4, help="Peak learning rate (linear warm-up and decay)."),
    max_steps: int | None = typer.Option(None, help="Stop after this many updates (smoke runs)."),
    seed: int = typer.Option(0, help="Seed of the split (as `tutor data grounded`), the order and the init."),
    order_seed: int | None = typer.Option(None, help="Seed of the order and the \"no answer\" passages alone "
                                          "(default: --seed): runs that differ only here can be averaged."),
) -> None:
    """The short-answer reader: a span head and adapter on the embedder's encoder, from SQuAD and CoQA."""
    from cli.data_commands import grounded_sets
    from cli.progress import progress_bar
    from engine.runtime.models import default_embedder_path
    from training.data.grounded import BuildConfig
    from training.errors import TrainingError
    from training.reader import ReaderConfig
    from training.reader import train_reader as run

    squad, coqa = grounded_sets(squad, coqa)
    config = ReaderConfig(epochs=epochs, rank=rank, alpha=2.0 * rank, learning_rate=learning_rate, seed=seed,
                          order_seed=order_seed, max_steps=max_steps,
                          build=BuildConfig(seed=seed))
    try:
        with progress_bar("Training the reader") as update:
            scores = run(out, default_embedder_path(), squad=squad, coqa=coqa, config=config, progress=update)
    except TrainingError as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(scores, indent=2))
    logger.info("Wrote the reader in %s.", out)


@train_app.command("reader-soup")
def train_reader_soup(
    members: list[Path] = typer.Argument(..., help="Reader folders trained with one --seed and different "
                                         "--order-seed."),
    out: Path = typer.Option(Path("engine/shipped/reader"), "--out", "-o", help="Folder for the averaged "
                             "reader (default: the shipped reader's)."),
    squad: Path | None = typer.Option(None, help="SQuAD rows, for the dev scores (as `tutor train reader`)."),
    coqa: Path | None = typer.Option(None, help="CoQA stories, for the dev scores."),
    seed: int = typer.Option(0, help="Seed of the split the members were trained on."),
) -> None:
    """One reader from several: their weights averaged ("model soup"), served at the cost of one."""
    from cli.data_commands import grounded_sets
    from engine.runtime.models import ModelNotFoundError
    from training.data.grounded import BuildConfig
    from training.errors import TrainingError
    from training.reader import soup_readers

    squad, coqa = grounded_sets(squad, coqa)
    try:
        scores = soup_readers(out, members, squad=squad, coqa=coqa, build=BuildConfig(seed=seed))
    except (TrainingError, ModelNotFoundError) as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(scores, indent=2))
    logger.info("Wrote the averaged reader in %s.", out)


@train_app.command("yes-no")
def train_yes_no(
    boolq: Path | None = typer.Option(None, help="BoolQ rows {question, passage, answer: true|false} "
                                      "(`python -m scripts.extract_boolq`); without it, CoQA's yes/no turns "
                                      "alone."),
    reader: Path = typer.Option(Path("engine/shipped/reader"), help="The reader folder to add the classifier "
                                "to (default: the shipped reader's)."),
    squad: Path | None = typer.Option(None, help="SQuAD rows: with --coqa they decide the split, as for the "
                                      "reader. Without --squad and --coqa, both sets of "
                                      "../shared/data/grounded."),
    coqa: Path | None = typer.Option(None, help="CoQA stories {id, source, story, turns}."),
    epochs: float = typer.Option(2.0, help="Passes over the train examples."),
    edit_share: float = typer.Option(0.5, min=0.0, max=1.0, help="Share of the examples that come again with "
                                     "a word of the passage swapped: one the question asks about (answered "
                                     "no) and another (answer kept)."),
    max_steps: int | None = typer.Option(None, help="Stop after this many updates (smoke runs)."),
    seed: int = typer.Option(0, help="Seed of the split (as the reader's), the order and the init."),
) -> None:
    """The reader's yes/no classifier, for questions asked for yes or no: from BoolQ and CoQA."""
    from cli.data_commands import grounded_sets
    from cli.progress import progress_bar
    from engine.runtime.models import ModelNotFoundError
    from training.data.grounded import BuildConfig
    from training.errors import TrainingError
    from training.yes_no import YesNoConfig
    from training.yes_no import train_yes_no as run

    squad, coqa = grounded_sets(squad, coqa)
    if coqa is None:
        raise typer.BadParameter("the yes/no dev score is measured on CoQA: give --coqa.",
                                 param_hint="--coqa")
    for path, hint in ((boolq, "--boolq"), (squad, "--squad"), (coqa, "--coqa")):
        if path is not None and not path.is_file():
            raise typer.BadParameter(f"{path} does not exist.", param_hint=hint)
    config = YesNoConfig(epochs=epochs, edit_share=edit_share, max_steps=max_steps, seed=seed,
                         build=BuildConfig(seed=seed))
    try:
        with progress_bar("Training the yes/no classifier") as update:
            scores = run(reader, squad=squad, coqa=coqa, boolq=boolq, config=config, progress=update)
    except (TrainingError, ModelNotFoundError) as error:
        logger.error("%s", error)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(scores, indent=2))
    logger.info("Wrote the yes/no classifier in %s.", reader)


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("merge")(merge)
    eval_app.command("preferences")(eval_preferences)
