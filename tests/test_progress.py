import io
import re

from tqdm.auto import tqdm

from tomoconsensus.learn.loop import train
from tomoconsensus.progress import LineProgress, progress

from tests.conftest import tiny_config


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_file_gets_one_complete_line_per_every_items_and_at_the_end():
    log = io.StringIO()
    items = list(progress(range(25), desc="prepare ct", unit="slice", every=10, file=log))
    assert items == list(range(25))
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text  # no bar redraws, no terminal control codes
    counts = re.findall(r"^prepare ct: slice (\d+)/25 \(\d+%\), ", text, flags=re.M)
    assert counts == ["10", "20", "25"] and len(text.splitlines()) == 3


def test_default_interval_is_a_tenth_and_lines_carry_the_postfix():
    log = io.StringIO()
    bar = progress(total=40, initial=8, desc="train consensus", unit="step", file=log)
    assert isinstance(bar, LineProgress) and bar.every == 4
    bar.set_postfix({"total": "0.012"})
    for _ in range(32):
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 8  # steps 12, 16, ..., 40 (resumed at 8)
    assert lines[0].startswith("train consensus: step 12/40 (30%), ") and lines[-1].endswith("total=0.012")
    assert " left" in lines[0] and "step/s" in lines[0]


def test_terminal_gets_a_tqdm_bar_and_disabled_prints_nothing():
    term = _Terminal()
    bar = progress(range(3), desc="denoise", file=term)
    assert isinstance(bar, tqdm) and list(bar) == [0, 1, 2]
    bar.close()
    assert "\r" in term.getvalue()
    quiet = io.StringIO()
    assert list(progress(range(3), enabled=False, file=quiet)) == [0, 1, 2]
    bar = progress(total=5, enabled=False, file=quiet)
    bar.update(5)
    bar.set_postfix({"loss": 1})
    bar.close()
    assert quiet.getvalue() == ""


def test_training_into_a_log_prints_one_line_per_epoch(prepared_ct, tmp_path, capsys):
    train(tiny_config(method="noise2noise"), prepared_ct, tmp_path / "run", progress=True)
    err = capsys.readouterr().err  # captured: not a terminal
    lines = [ln for ln in err.splitlines() if ln.startswith("train noise2noise: ")]
    assert [re.search(r"step (\d+)/8", ln).group(1) for ln in lines] == ["4", "8"]  # 2 epochs of 4 steps
    assert all("total=" in ln for ln in lines) and "\r" not in err
