"""The ``vilu-sklearn`` command line on bad input (issue 11: defects 11-13, 17)."""

from __future__ import annotations

import errno
import io
import os
import pickle

import numpy as np
import pytest

from vilu_sklearn._cli import main
from vilu_sklearn.datasets import make_caption_embeddings, make_vlm_embeddings


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    d = make_vlm_embeddings(120, 4, 32, accuracy=0.7, random_state=0)
    path = tmp_path_factory.mktemp("cli") / "emb.npz"
    np.savez(path, X_img=d.X_img, y=d.labels, X_txt=d.X_txt)
    return path


def _run(capsys, *args):
    code = main(["benchmark", "--methods", "MSP", "--n-resamples", "0", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, match):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vilu-sklearn: error:"), err
    assert match in lines[0], lines[0]


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("--logit-scale", "0", "--logit-scale"),
        ("--logit-scale", "-3", "--logit-scale"),
        ("--logit-scale", "nan", "--logit-scale"),
        ("--test-fraction", "0", "--test-fraction"),
        ("--test-fraction", "-0.2", "--test-fraction"),
        ("--test-fraction", "1.5", "--test-fraction"),
        ("--test-fraction", "nan", "--test-fraction"),
        ("--test-fraction", "0.001", "at least 2 rows"),
        ("--max-epochs", "0", "--max-epochs"),
        ("--n-resamples", "-1", "--n-resamples"),
        ("--caption-group-size", "0", "--caption-group-size"),
        ("--seed", "-1", "--seed"),
        ("--device", "gpu7", "--device"),
    ],
)
def test_bad_options_one_line_exit_2(npz, capsys, option, value, match):
    # defect 13: --logit-scale 0 became 100, --test-fraction 0 gave a 1-row test
    code, out, err = _run(capsys, "--data", str(npz), option, value)
    _one_line_error(code, err, match)
    assert out == ""


def test_output_path_checked_before_the_run(npz, capsys, tmp_path):
    # defect 11: an unwritable --output lost the whole run to a traceback
    missing = tmp_path / "no" / "such" / "dir" / "t.md"
    code, out, err = _run(capsys, "--data", str(npz), "--output", str(missing))
    _one_line_error(code, err, "--output")
    code, out, err = _run(capsys, "--data", str(npz), "--output", str(tmp_path))
    _one_line_error(code, err, "is a directory")


def test_table_printed_before_a_failing_write(npz, capsys, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise PermissionError("disk says no")

    monkeypatch.setattr(os, "replace", fail)
    code, out, err = _run(capsys, "--data", str(npz), "--output", str(tmp_path / "t"))
    assert code == 1
    assert "| MSP |" in out  # the run is not lost
    assert "could not write --output" in err


def test_caption_mode_checks_row_counts(capsys, write_npz):
    # defect 12: extra captions were dropped, fewer gave an IndexError
    d = make_caption_embeddings(60, 32, random_state=0)
    for X_txt in (d.X_txt[:50], np.vstack([d.X_txt, d.X_txt[:5]])):
        path = write_npz("cap.npz", X_img=d.X_img, X_txt=X_txt)
        code, out, err = _run(capsys, "--data", str(path), "--mode", "caption")
        _one_line_error(code, err, "row by row")


def test_bad_files_one_line_exit_2(capsys, tmp_path, write_npz):
    # defect 17: tracebacks and misleading messages for bad files
    text = tmp_path / "notes.npz"
    text.write_text("hello, not numpy\n")
    code, out, err = _run(capsys, "--data", str(text))
    _one_line_error(code, err, "not a numpy file")
    assert "pickled" not in err
    pkl = tmp_path / "evil.npz"
    pkl.write_bytes(pickle.dumps({"X_img": 1}))
    code, out, err = _run(capsys, "--data", str(pkl))
    _one_line_error(code, err, "pickle")
    code, out, err = _run(capsys, "--data", str(tmp_path / "missing.npz"))
    _one_line_error(code, err, "no such file")
    code, out, err = _run(capsys, "--data", str(tmp_path))
    _one_line_error(code, err, "--data")
    bad = write_npz(
        "bad.npz", X_img=np.ones((5, 3)), X_txt=np.ones((2, 4)), y=np.zeros(5, int)
    )
    code, out, err = _run(capsys, "--data", str(bad))
    _one_line_error(code, err, "dimension")
    assert os.path.exists(bad)


def test_interrupted_training_exits_non_zero(npz, capsys, tmp_path, monkeypatch):
    # defect 5: a truncated ViLU fit was reported as a normal row, exit 0
    from vilu_sklearn import ViLUClassifier

    def interrupted_fit(self, *args, **kwargs):
        self.interrupted_ = True
        return self

    monkeypatch.setattr(ViLUClassifier, "fit", interrupted_fit)
    out_file = tmp_path / "t.md"
    code = main(
        [
            "benchmark",
            "--data",
            str(npz),
            "--methods",
            "MSP,ViLU",
            "--n-resamples",
            "0",
            "--output",
            str(out_file),
            "--quiet",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 130 and out == "" and not out_file.exists()
    assert "interrupted" in err


# ------------------------------------------------- issue 18: defects 3, 9, 11
def test_output_that_is_the_data_file_is_refused(npz, capsys, tmp_path):
    # issue 18, defect 3: --output emb.npz replaced the input data by the table
    data = tmp_path / "emb.npz"
    data.write_bytes(npz.read_bytes())
    before = data.read_bytes()
    link = tmp_path / "link.npz"
    link.symlink_to(data)
    for output in (data, link, tmp_path / "." / "emb.npz"):
        code, out, err = _run(capsys, "--data", str(data), "--output", str(output))
        _one_line_error(code, err, "is the --data file")
        assert out == "" and data.read_bytes() == before


def test_output_is_written_atomically(npz, capsys, tmp_path, monkeypatch):
    # issue 18, defect 9: a full disk lost the previous --output and left a
    # partial table
    out_file = tmp_path / "table.md"
    out_file.write_text("previous table\n")
    real_open = io.open

    class DiskFull:
        """A text file on a disk that fills up halfway through a write."""

        def __init__(self, f):
            self._f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

        def write(self, text):
            self._f.write(text[: len(text) // 2])
            self._f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._f, name)

    def open_on_full_disk(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return DiskFull(f) if "w" in mode else f

    monkeypatch.setattr(io, "open", open_on_full_disk)
    code, out, err = _run(capsys, "--data", str(npz), "--output", str(out_file))
    monkeypatch.undo()
    assert code == 1 and "| MSP |" in out and "could not write --output" in err
    assert out_file.read_text() == "previous table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]
    code, out, err = _run(capsys, "--data", str(npz), "--output", str(out_file))
    assert code == 0 and out_file.read_text() == out
    link = tmp_path / "link.md"  # a link is written through, not replaced
    link.symlink_to(out_file)
    out_file.write_text("old\n")
    code, out, err = _run(capsys, "--data", str(npz), "--output", str(link))
    assert code == 0 and link.is_symlink() and out_file.read_text() == out


def test_cuda_device_without_cuda_is_one_line(npz, capsys, monkeypatch):
    # issue 18, defect 11: --methods LVU --device cuda on a CPU-only machine
    # printed an AssertionError traceback
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for methods in ("LVU", "MSP"):
        code = main(
            ["benchmark", "--data", str(npz), "--methods", methods, "--device", "cuda"]
        )
        out, err = capsys.readouterr()
        _one_line_error(code, err, "CUDA is not available")


def test_labels_note_names_only_the_methods_that_learn_from_labels():
    import argparse

    from vilu_sklearn import REFERENCE_PARAMS, ViLUClassifier
    from vilu_sklearn import baselines as bl
    from vilu_sklearn._cli import _labels_note

    args = argparse.Namespace(mode="classification", no_labels=False)
    est = {
        "ViLU": ViLUClassifier(),
        "ViLU (paper)": ViLUClassifier(**REFERENCE_PARAMS),
        "MSP": bl.MSP(),
        "LinearProbe": bl.LinearProbe(),
    }
    note = _labels_note(args, {"y_kind": "labels"}, est)
    assert note.startswith(" ViLU and LinearProbe were also given")
    assert "paper" not in note
