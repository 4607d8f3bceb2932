"""The study runner: prepare -> train -> distil -> denoise -> evaluate -> report -> checks.

Every demo, example and benchmark that runs the whole method calls :func:`run_study` with a
modality's :class:`~tomoconsensus.study.spec.DemoSpec` (found through the registry: the plugin's
``demo`` part) and a protocol read from the spec's TOML (:func:`demo_protocol`). The three methods
(consensus, Noise2Noise, Noise2Clean) and the distilled network are trained once each (finished runs
are reused, interrupted ones resumed), each run keeps the epoch with the lowest held-out
self-supervised loss, the test file is denoised per reported output, evaluated against the baselines
and reported; then the paper's claims are checked on the numbers (:mod:`tomoconsensus.study.story`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from tomoconsensus import registry
from tomoconsensus.denoising import denoise
from tomoconsensus.distillation import distill
from tomoconsensus.evaluation import evaluate
from tomoconsensus.learn.loop import train
from tomoconsensus.report import metrics_json, metrics_markdown, write_report
from tomoconsensus.study.folder import claim_demo_folder
from tomoconsensus.study.protocol import StudyProtocol, load_protocol
from tomoconsensus.study.spec import DISTILL_TEACHER, DemoSpec
from tomoconsensus.study.story import check_story, converged_check, failed, verdict_lines


def demo_spec(modality: str) -> DemoSpec:
    """The demo of ``modality``'s plugin (InputError naming the modality where it has none)."""
    return registry.get(modality).load("demo")


def demo_protocol(modality: str, quick: bool = False) -> StudyProtocol:
    """The ``full`` (or ``quick``) protocol of ``modality``'s demo, read from its TOML."""
    spec = demo_spec(modality)
    return load_protocol(spec.protocol, spec.data, "quick" if quick else "full")


def run_study(modality: str, out_dir: str | Path, protocol: StudyProtocol | None = None, device: str = "auto",
              progress: bool = True, overwrite: bool = False, methods: tuple[str, ...] | None = None) -> dict:
    """Prepare, train, denoise, evaluate, report and check one modality's demo in ``out_dir``.

    ``methods`` (default: every method of the demo) trains only these (``()``: evaluate the baselines
    alone); the paper's claims are checked only when every method ran and the report holds the spec's
    baseline (not so with another reconstruction, e.g. OSEM for FBP). Returns ``seconds``, ``summary``
    (method -> metric -> mean, std, per-slice values), the report ``files`` and the ``story`` (claims
    with their verdicts).
    """
    spec, out_dir = demo_spec(modality), Path(out_dir)
    protocol = protocol or demo_protocol(modality)
    complete = methods is None or {m[0] for m in spec.methods} <= set(methods)
    if methods is not None:
        spec = dataclasses.replace(spec, methods=tuple(m for m in spec.methods if m[0] in methods),
                                   keep_means=tuple(m for m in spec.keep_means if m[0] in methods))
    claim_demo_folder(out_dir, modality, protocol, overwrite)
    start, cpu_start = time.perf_counter(), time.process_time()
    print(f"tomoconsensus demo ({modality.upper()}): {protocol.describe()}")
    paths = [out_dir / f"{modality}_{name}.h5" for name in ("train", "val", "test")]
    fresh = not (out_dir / "runs").exists() and not any(p.exists() for p in paths)
    if all(p.exists() for p in paths):
        print(f"prepared files: {', '.join(map(str, paths))}")
    else:
        paths = list(spec.prepare(out_dir, protocol, progress=progress, device=device))
    results, runs = train_runs(spec, protocol, paths, out_dir, device, progress)
    results.update(kept_means_outputs(spec, protocol, out_dir, paths[2], device, progress))
    ev = evaluate(paths[2], results)
    files = write_report(ev, out_dir / "report", runs)
    summary = metrics_json(ev)  # method -> metric -> mean, std and per-slice values (the paired tests)
    print("\n" + metrics_markdown(ev))
    print(f"report: {', '.join(str(p) for p in files.values())}")
    story = study_checks(spec, protocol, out_dir, ev, summary["methods"], complete and spec.baseline in ev.images)
    seconds = time.perf_counter() - start
    print(f"demo ({modality.upper()}) finished in {seconds / 60:.1f} min ({protocol.describe()})")
    if spec.max_minutes is not None:
        story.append(time_check(seconds, time.process_time() - cpu_start, spec.max_minutes, fresh))
    for line in story:
        print(line)
    if failed(story):
        print(f"why, measured: {spec.why_not}")
    return {"seconds": seconds, "summary": summary, "files": {k: str(v) for k, v in files.items()}, "story": story}


def study_checks(spec: DemoSpec, protocol: StudyProtocol, out_dir: Path, ev, metrics: dict, claims: bool) -> list[str]:
    """The paper's claims (``claims``: every method ran), the bound's convergence and the modality's own table
    and checks (``spec.quality``), as ``verdict: text`` lines."""
    story = check_story(metrics, spec.baseline, spec.error, spec.claims) if claims else []
    if claims and "noise2clean" in dict(protocol.method_epochs):
        story += verdict_lines([converged_check(out_dir / "runs" / "noise2clean", "Noise2Clean")])
    if spec.quality is not None:
        markdown, checks = spec.quality(out_dir, ev)
        print("\n" + markdown)
        story += verdict_lines(checks)
    return story


def train_runs(spec: DemoSpec, protocol: StudyProtocol, paths: list[Path], out_dir: Path, device: str,
               progress: bool) -> tuple[dict[str, Path], dict[str, Path]]:
    """Train each method of ``spec.methods`` once (reusing finished runs), denoise the test file per output.

    Outputs of ``spec.data_consistency`` methods are pulled back onto the acquired data (lambda chosen
    once per run on the validation file's held-out lines); their default outputs are also reported
    without it, as "<label> (no DC)". Returns (label -> denoised file, label -> run folder).
    """
    train_path, val_path, test_path = paths
    results, runs, lamdas = {}, {}, {}
    for method, variant, label in spec.methods:
        run_dir = out_dir / "runs" / method
        config = protocol.training.config(device, method, protocol.epochs(method), protocol.lr_schedule(method))
        train_run(config, run_dir, train_path, val_path, out_dir, progress)
        name = f"denoised_{method}{'_' + variant if variant else ''}"
        if method in spec.data_consistency:
            if method not in lamdas:
                lamdas[method] = choose_lamda(method, run_dir, val_path, device)
            results[label] = denoise_once(run_dir, test_path, out_dir / f"{name}_dc.h5", variant, device, progress,
                                          lamdas[method])
            if variant is None:
                results[f"{label} (no DC)"] = denoise_once(run_dir, test_path, out_dir / f"{name}.h5", variant,
                                                           device, progress)
        else:
            results[label] = denoise_once(run_dir, test_path, out_dir / f"{name}.h5", variant, device, progress)
        runs.setdefault(label, run_dir)  # training curves: one per method, under its first label
    return results, runs


def train_run(config, run_dir: Path, train_path: Path, val_path: Path, out_dir: Path, progress: bool) -> None:
    """Train (or distil) ``config.method`` unless its run is finished; an interrupted run is resumed."""
    if (run_dir / "model.pt").exists():
        print(f"{config.method}: finished run {run_dir}")
        return
    # resume an interrupted run; a folder killed before its first checkpoint (the demo's own) starts again
    resume = (run_dir / "checkpoint.pt").exists()
    options = {"resume": resume, "progress": progress, "overwrite": not resume and run_dir.exists()}
    if config.method == "distill":
        print(distill(config, out_dir / "runs" / DISTILL_TEACHER, train_path, run_dir, val_path, **options))
    else:
        print(train(config, train_path, run_dir, val_path, **options))


def choose_lamda(method: str, run_dir: Path, val_path: Path, device: str) -> float:
    """The data-consistency weight of a run, chosen on the validation file's held-out lines."""
    from tomoconsensus.data.prepared import read_prepared
    from tomoconsensus.data_consistency import choose_lamda as choose
    from tomoconsensus.learn.trained import load_trained, resolve_device

    dev = resolve_device(device)
    _, models = load_trained(run_dir, dev)
    lamda, _ = choose(method, models, read_prepared(val_path), dev)
    print(f"{method}: data consistency lambda {lamda:.3g} (held-out lines of {val_path.name})")
    return lamda


def denoise_once(run_dir: Path, test_path: Path, out: Path, variant: str | None, device: str, progress: bool,
                 lamda: float | None = None, keep_means_mm: float | None = None) -> Path:
    """Denoise the test file with a run, unless ``out`` was written after the run's model (kept from before)."""
    model = run_dir / "model.pt"
    if not out.exists() or (model.exists() and out.stat().st_mtime < model.stat().st_mtime):
        print(denoise(run_dir, test_path, out, variant=variant, device=device, progress=progress,
                      data_consistency=lamda, keep_means_mm=keep_means_mm))
    return out


def kept_means_outputs(spec: DemoSpec, protocol: StudyProtocol, out_dir: Path, test_path: Path, device: str,
                       progress: bool) -> dict[str, Path]:
    """The quantitative outputs (``spec.keep_means``): local means of x_est kept."""
    results = {}
    for method, label in spec.keep_means:
        diameter = protocol.data.keep_means_mm
        results[label.format(diameter=f"{diameter:g}")] = denoise_once(
            out_dir / "runs" / method, test_path, out_dir / f"denoised_{method}_means_{diameter:g}mm.h5", None,
            device, progress, keep_means_mm=diameter)
    return results


def time_check(seconds: float, cpu_seconds: float, max_minutes: float, fresh: bool) -> str:
    """The demo's wall time against its target, with what it depends on: the process's CPU time, the
    cores and the load average (other jobs on the machine slow the demo down); a demo that reused
    prepared files or runs is not a measurement."""
    cores, load = os.cpu_count(), os.getloadavg()[1]
    text = (f"demo wall time {seconds / 60:.1f} min <= {max_minutes:g} min (CPU time of this process "
            f"{cpu_seconds / 60:.1f} min on {cores} cores; load average over the last 5 min {load:.1f})")
    if not fresh:
        return f"NOT MEASURED (reused prepared files or runs): {text}"
    return f"{'holds' if seconds <= 60 * max_minutes else 'DOES NOT HOLD'}: {text}"


def with_data(protocol: StudyProtocol, **changes) -> StudyProtocol:
    """``protocol`` with some of its data values changed (examples and benchmarks)."""
    return dataclasses.replace(protocol, data=dataclasses.replace(protocol.data, **changes))
