"""`tunelab align ...`: train DPO / EPA, run the exact theory experiment and the controlled-reward study."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import typer

from tunelab import validate
from tunelab.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Preference alignment: EPA and DPO (and PoFT when installed).",
                  pretty_exceptions_enable=False)

try:
    from tunelab.align.poft.cli import app as poft_app
except ModuleNotFoundError as err:
    if err.name != "tunelab.align.poft.cli":
        raise
else:
    app.add_typer(poft_app, name="poft", help="PoFT: preference-oriented SFT against aligned models.")


GUARD_FIELDS = ("nll_weight", "dpop_lambda", "weak_max_similarity")  # the DisplacementGuards fields, in the summary


def _emit(result: dict, as_json: bool, lines: list[str]) -> None:
    from tunelab.io import to_jsonable

    if as_json:
        typer.echo(json.dumps(to_jsonable(result), indent=2))
    else:
        for line in lines:
            typer.echo(line)


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"--{name} must be comma-separated integers, got '{text}'") from None
    if not values or min(values) < 0:
        raise UserError(f"--{name} must list non-negative integers")
    return values


def _train_options(func):
    # every preference knob is a PreferenceOptions field (AlignConfig inherits them, displacement guards included)
    # and the schedule is TrainSchedule's: their defaults and help live in the dataclasses, the command only names the flags
    from tunelab.align.preference.config_options import config_options
    from tunelab.align.preference.options import TRAIN_FLAGS, PreferenceOptions, TrainSchedule

    func = config_options(TrainSchedule, dest="schedule")(func)
    return config_options(PreferenceOptions, dest="preference", flags=TRAIN_FLAGS)(func)


@app.command()
@_train_options
def train(
    data: Path = typer.Option(..., help="JSONL / CSV / Parquet with prompt, chosen, rejected (string or list)"),
    out: Path = typer.Option(..., help="output folder (adapter or model, metrics.json); written atomically"),
    model: str = typer.Option("smollm2-135m-instruct", help="embedded name, hub id or local folder"),
    checkpoint_dir: Path = typer.Option(None, help="checkpoints (default: OUT-checkpoints, made only with --save-steps)"),
    resume: str = typer.Option(None, help="checkpoint folder to resume from, or 'last'"),
    eval_data: Path = typer.Option(None, help="held-out preference data: eval_rewards/* metrics at the end"),
    report_to: str = typer.Option("none", help="loggers as in transformers (tensorboard, wandb, ...; comma-separated)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    preference: dict = None,
    schedule: dict = None,
) -> None:
    """Train a causal LM with DPO or EPA on preference data (guards against likelihood displacement: docs/align.md).

    Under `accelerate launch` every process trains; only the main one prints and writes --out."""
    from tunelab.align.preference.config import check_preference_options
    from tunelab.align.preference.options import PreferenceOptions, TrainSchedule
    from tunelab.data import read_records

    run = TrainSchedule(**schedule)
    options = PreferenceOptions(**preference).resolved()
    method = options.method
    check_preference_options(options)
    validate.at_least("--lora-r", run.lora_r, 0)
    validate.at_least("--batch-size", run.batch_size, 1)
    validate.positive("--lr", run.lr)
    validate.steps_or_epochs("--steps", run.steps, "--epochs", run.epochs)
    validate.at_least("--save-steps", run.save_steps, 0)
    report = report_targets(report_to)
    checkpoints = checkpoint_dir or out.with_name(out.name + "-checkpoints")
    validate.out_dir(out)
    validate.out_dir(checkpoints, "--checkpoint-dir")
    validate.in_file(data, "--data")
    validate.at_least("--eval-steps", run.eval_steps, 0)
    if run.eval_steps and eval_data is None:
        raise UserError("--eval-steps needs --eval-data (the held-out preference data)")
    records = read_records(data)
    from tunelab.align.preference.data import normalize_records

    ns = options.num_strong
    normalize_records(records, ns=ns)  # fail fast, before loading a model
    eval_records = None
    if eval_data is not None:
        validate.in_file(eval_data, "--eval-data")
        eval_records = read_records(eval_data)
        normalize_records(eval_records, ns=ns)
    from tunelab.resume import checkpoint_problem, last_checkpoint, run_train_loss

    if resume == "last":
        found = last_checkpoint(checkpoints)  # skips incomplete ones, one line each on stderr
        if found is None:
            raise UserError(f"no checkpoint under {checkpoints} to resume from")
        resume = str(found)
    elif resume is not None and not Path(resume).is_dir():
        raise UserError(f"no such checkpoint folder: {resume}")
    elif resume is not None and (problem := checkpoint_problem(resume)):
        raise UserError(f"cannot resume from {resume}: {problem}; pass an earlier checkpoint or --resume last")

    from tunelab.align.preference.config import AlignConfig
    from tunelab.align.preference.trainer import PreferenceTrainer, name_base_model
    from tunelab.io import atomic_write_json, staged_dir
    from tunelab.models.lora import load_for_training, lora_config
    from tunelab.progress import track

    model_obj, tok = load_for_training(model, seed=run.seed)
    name_base_model(model_obj, model)
    # the checkpoints folder also holds the loggers' files (tensorboard's runs/): made only when something goes there
    keeps_checkpoints = bool(run.save_steps) or resume is not None or checkpoint_dir is not None or report != "none"
    scratch = None if keeps_checkpoints else tempfile.TemporaryDirectory(prefix="tunelab-align-")
    args = AlignConfig(output_dir=scratch.name if scratch else str(checkpoints), **dataclasses.asdict(options),
                       **run.training_arguments(), eval_strategy="steps" if run.eval_steps and eval_records else "no",
                       eval_steps=run.eval_steps or None, logging_steps=1, disable_tqdm=True, report_to=report,
                       ddp_find_unused_parameters=False)  # every adapter / weight takes part in each forward
    peft_config = lora_config(run.lora_r, alpha=2 * run.lora_r) if run.lora_r else None
    trainer = PreferenceTrainer(model_obj, args, records, tok, peft_config=peft_config, eval_dataset=eval_records,
                                reference_progress=lambda it: track(it, "reference log-probs"))
    from tunelab.align.preference.progress_callback import use_rich_progress

    use_rich_progress(trainer, f"{method} training")
    result = trainer.train(resume_from_checkpoint=resume)
    evaluation = trainer.evaluate() if eval_records is not None else {}
    if scratch is not None:
        scratch.cleanup()  # nothing was saved there: no checkpoints folder beside --out
    if not trainer.is_world_process_zero():
        return  # the main process holds the same model and writes it
    logs = trainer.state.log_history
    steps_logged = [h for h in logs if "loss" in h]
    train_loss = run_train_loss(logs, result.training_loss)  # over every step, also those before a resume
    guards = {k: getattr(options, k) for k in GUARD_FIELDS}
    summary = {"method": method, "model": model, "steps": trainer.state.global_step, "train_loss": train_loss,
               "guards": guards, "final": steps_logged[-1] if steps_logged else {}, "eval": evaluation,
               "out": str(out)}
    with staged_dir(out) as tmp:
        trainer.model.save_pretrained(tmp / "model")
        tok.save_pretrained(tmp / "model")
        atomic_write_json(tmp / "metrics.json", summary)
        atomic_write_json(tmp / "log_history.json", logs)
    final = summary["final"]
    lines = [f"{method}: {summary['steps']} steps, loss {train_loss:.4f}, "
             f"reward accuracy {final.get('rewards/accuracies', float('nan')):.2f}, "
             f"margin {final.get('rewards/margins', float('nan')):.4f} -> {out}"]
    if evaluation:
        lines.append(f"eval: loss {evaluation['eval_loss']:.4f}, reward accuracy "
                     f"{evaluation['eval_rewards/accuracies']:.2f}, margin {evaluation['eval_rewards/margins']:.4f}")
    _emit(summary, as_json, lines)


def report_targets(text: str) -> str | list[str]:
    """--report-to as TrainingArguments takes it: 'none', 'all', or a list of integrations."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in INTEGRATION_TO_CALLBACK and n not in ("none", "all")]
    if not names or unknown:
        raise UserError(f"--report-to: unknown logger(s) {', '.join(unknown) or text!r}; use 'none', 'all' or "
                        f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))}")
    return names[0] if len(names) == 1 and names[0] in ("none", "all") else names


@app.command()
def theory(
    prompts: int = typer.Option(16),
    responses: int = typer.Option(12),
    inits: int = typer.Option(5, help="initialisations per method"),
    nw: str = typer.Option("0,1,4,16", help="EPA variants: weak negatives per positive"),
    w: float = typer.Option(1.0),
    beta: float = typer.Option(0.1),
    seed: int = typer.Option(0),
    out: Path = typer.Option(None, help="folder for theory.json and theory.png"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The exact tabular experiment: slope, Pearson r, spread across initialisations, KL (DPO vs EPA)."""
    from tunelab.align.preference.theory import TheoryConfig, run_theory, theory_figure
    from tunelab.progress import track

    if prompts < 1 or responses < 2 or inits < 1:
        raise UserError("need --prompts >= 1, --responses >= 2 and --inits >= 1")
    validate.positive("--beta", beta)
    validate.at_least("--w", w, 0)
    validate.out_dir(out)
    cfg = TheoryConfig(prompts=prompts, responses=responses, inits=inits, weak_negatives=_ints(nw, "nw"), w=w,
                       beta=beta, seed=seed)
    outcome = run_theory(cfg, progress=lambda jobs: track(jobs, "theory: optimising"))
    table = [{k: r[k] for k in ("method", "slope", "pearson", "spread", "kl", "loss")} for r in outcome["results"]]
    if out is not None:
        from tunelab.io import atomic_savefig, atomic_write_json, staged_dir

        with staged_dir(out) as tmp:
            atomic_write_json(tmp / "theory.json", {"config": outcome["config"], "results": table})
            atomic_savefig(theory_figure(outcome), tmp / "theory.png")
    _emit({"config": outcome["config"], "results": table}, as_json,
          [f"{r['method']:>12}: slope {r['slope']:.4f}  r {r['pearson']:.4f}  spread {r['spread']:.2e}  "
           f"KL {r['kl']:.3f}" for r in table])


@app.command()
def study(
    # the defaults are StudyConfig's (tests/align/test_align_cli.py holds them to it, field by field)
    model: str = typer.Option("smollm2-135m-instruct"),
    prompts: int = typer.Option(8, help="prompts (at most 16 built in)"),
    seeds: str = typer.Option("0,1,2"),
    steps: int = typer.Option(8),
    batch_size: int = typer.Option(2),
    lr: float = typer.Option(2e-3),
    nw: int = typer.Option(1, help="EPA weak negatives"),
    ns: int = typer.Option(1, help="EPA strong negatives"),
    train_responses: int = typer.Option(3),
    heldout_responses: int = typer.Option(3),
    max_new_tokens: int = typer.Option(12),
    out: Path = typer.Option(None, help="folder for study.json and study.png"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Controlled-reward study: DPO vs EPA with LoRA, true reward known (MiniLM joy-vs-gloom score)."""
    from tunelab.align.preference.study import PROMPTS, StudyConfig, run_study, study_figure
    from tunelab.progress import track

    if not 2 <= prompts <= len(PROMPTS):
        raise UserError(f"--prompts must be between 2 and {len(PROMPTS)}")
    if ns >= train_responses or heldout_responses < 2 or steps < 1:
        raise UserError("need --ns < --train-responses, --heldout-responses >= 2 and --steps >= 1")
    validate.at_least("--batch-size", batch_size, 1)
    validate.positive("--lr", lr)
    validate.at_least("--max-new-tokens", max_new_tokens, 1)
    validate.at_least("--nw", nw, 0)
    validate.out_dir(out)
    cfg = StudyConfig(model=model, prompts=prompts, seeds=_ints(seeds, "seeds"), steps=steps, batch_size=batch_size,
                      learning_rate=lr, num_weak=nw, num_strong=ns, train_responses=train_responses,
                      heldout_responses=heldout_responses, max_new_tokens=max_new_tokens)
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))  # small models: more threads only add overhead
    outcome = run_study(cfg, progress=lambda jobs: track(jobs, "study: training"))
    if out is not None:
        from tunelab.io import atomic_savefig, atomic_write_json, staged_dir

        with staged_dir(out) as tmp:
            atomic_write_json(tmp / "study.json", outcome)
            atomic_savefig(study_figure(outcome), tmp / "study.png")
    s = outcome["summary"]
    _emit(outcome, as_json, [f"{m}: r(implicit,true) {s[m]['pearson']['mean']:.3f} +/- {s[m]['pearson']['sd']:.3f}, "
                             f"slope {s[m]['slope']['mean']:.3f}, KL {s[m]['kl']['mean']:.3f}, "
                             f"win rate {s[m]['win_rate']['mean']:.2f}" for m in s]
          + [f"higher r(implicit, true): {outcome['higher_pearson']}"])


def _enumerable_options(func):
    # the options are EnumerableConfig's fields (defaults and all), built when the command is registered
    from tunelab.align.preference.config_options import config_options
    from tunelab.align.preference.enumerable_config import EnumerableConfig

    return config_options(EnumerableConfig, dest="settings")(func)


@app.command()
@_enumerable_options
def enumerable(
    out: Path = typer.Option(None, help="folder for enumerable.json (resumable) and enumerable.png"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output (the summary)"),
    settings: dict = None,
) -> None:
    """Enumerable study: DPO vs EPA on a tiny transformer LM with exact pi, pi* and J (every config field a flag)."""
    from tunelab.align.preference.enumerable_report import summary_rows
    from tunelab.align.preference.enumerable_config import EXACT, EnumerableConfig
    from tunelab.align.preference.enumerable_study import run_into, run_study
    from tunelab.progress import track

    cfg = EnumerableConfig(**settings)
    validate.out_dir(out)
    progress = lambda cells: track(cells, "enumerable study")  # noqa: E731
    outcome = run_into(cfg, out, progress) if out is not None else run_study(cfg, progress=progress)
    s = outcome["summary"]
    lines = []
    for size in map(str, cfg.sizes):
        name = "exact" if int(size) == EXACT else size
        lines.append(f"N = {name}: method | slope | r | slope-1 error | spread | KL | J")
        lines += ["    " + " | ".join(row) for row in summary_rows(s, size)]
    lines.append(f"J(pi*) {s['J_optimal']['mean']:.4f}  J(pi_ref) {s['J_reference']['mean']:.4f}")
    _emit(s, as_json, lines)
