"""btrain on the CPU: pretraining on the fly lowers the loss, fine-tuning and evaluation run from its
checkpoint, an interrupted run resumes to the same losses, Python's torch.load reads encoder.pt, and bad
input stops with one line without touching a good checkpoint."""
import hashlib
import os
import pathlib
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

BTRAIN = os.environ.get("BTRAIN") or str(pathlib.Path(__file__).resolve().parents[2] / "build" / "apps" / "btrain")
ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = ["--config", str(ROOT / "configs" / "train_tiny.yaml")]

pytestmark = pytest.mark.skipif(not os.path.exists(BTRAIN), reason="btrain not built (no libtorch)")


def btrain(*args, check=True, timeout=900):
    p = subprocess.run([BTRAIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"btrain {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p


def losses(run):
    rows = (pathlib.Path(run) / "log.csv").read_text().splitlines()[1:]
    return {int(r.split(",")[0]): float(r.split(",")[1]) for r in rows}


def one_error_line(p, *needles, code=2):
    assert p.returncode == code, (p.returncode, p.stderr)
    errs = [l for l in p.stderr.splitlines() if l.startswith("btrain: error:")]
    assert len(errs) == 1, p.stderr
    for n in needles:
        assert n in errs[0], (n, errs[0])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "pre"
    btrain("pretrain", "--on-the-fly", *TINY, "--out", run, "--quiet")
    return run


def test_pretraining_loss_falls(pretrained):
    l = losses(pretrained)
    first, last = l[min(l)], np.mean([l[k] for k in sorted(l)[-3:]])
    assert last < 0.8 * first, l
    for name in ["config.yaml", "encoder.pt", "checkpoint/model.pt", "checkpoint/optimizer.pt", "checkpoint/state.yaml"]:
        assert (pretrained / name).exists(), name
    header = (pretrained / "log.csv").read_text().splitlines()[0]
    assert header == "step,loss,data_ms,compute_ms,data_share,examples_per_s"


def test_encoder_weights_open_in_python(pretrained):
    torch = pytest.importorskip("torch")
    sd = torch.load(pretrained / "encoder.pt")  # weights_only=True, the default
    assert sd["proj.weight"].shape == (64, 4 * 257)
    assert sd["lstm.weight_hh_l0"].shape == (4 * 64, 64)
    assert all(torch.isfinite(v).all() for v in sd.values())
    lstm = torch.nn.LSTM(64, 64, 1, batch_first=True)
    lstm.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("lstm.")})


def test_finetune_and_eval_from_the_checkpoint(pretrained, tmp_path):
    btrain("finetune", "--init", pretrained, "--on-the-fly", *TINY, "--set", "train.steps=40",
           "--set", "train.labelled_examples=64", "--out", tmp_path / "doa", "--quiet")
    assert len(losses(tmp_path / "doa")) >= 1
    p = btrain("eval", "--model", tmp_path / "doa", "--report", tmp_path / "rep", "--examples", 16, "--seed", 4242)
    assert "MAE (deg)" in p.stdout
    rows = (tmp_path / "rep" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "azimuth_deg,predicted_deg,abs_error_deg,snr_db,t60_s,noise_type,example_index" and len(rows) == 17
    assert sorted(int(r.split(",")[6]) for r in rows[1:]) == list(range(16))  # examples 0..15 of seed 4242
    assert "model.doa_pooling: last, model.doa_estimate: parabolic" in (tmp_path / "rep" / "summary.md").read_text()
    # The class readout gives class centres; the default parabolic readout moves each within its class.
    btrain("eval", "--model", tmp_path / "doa", "--report", tmp_path / "rep-class", "--examples", 16, "--seed", 4242,
           "--set", "model.doa_estimate=class")
    def predicted(csv):  # example index -> predicted azimuth
        return {int(r.split(",")[6]): float(r.split(",")[1]) for r in csv.read_text().splitlines()[1:]}
    centre, vertex = predicted(tmp_path / "rep-class" / "predictions.csv"), predicted(tmp_path / "rep" / "predictions.csv")
    assert all(abs((c + 90) % 5 - 2.5) < 1e-4 for c in centre.values()), centre
    assert all(abs(vertex[i] - centre[i]) <= 2.5 + 1e-4 for i in centre) and vertex != centre, (vertex, centre)
    # All frames' scores averaged instead of the last frame's (the default): other estimates of the same examples.
    btrain("eval", "--model", tmp_path / "doa", "--report", tmp_path / "rep-mean", "--examples", 16, "--seed", 4242,
           "--set", "model.doa_pooling=mean")
    assert "model.doa_pooling: mean" in (tmp_path / "rep-mean" / "summary.md").read_text()
    mean = predicted(tmp_path / "rep-mean" / "predictions.csv")
    assert sorted(mean) == sorted(vertex) and mean != vertex
    one_error_line(btrain("eval", "--model", tmp_path / "doa", "--report", tmp_path / "rep2", check=False),
                   "training seed")
    shard = tmp_path / "thirteen.h5"  # 13 examples: not a multiple of the batch size; all must be scored
    subprocess.run([os.environ.get("BSIM", str(ROOT / "build" / "apps" / "bsim")), "generate", "--rooms", "13",
                    "--out", shard, *TINY, "--quiet"], check=True, capture_output=True)
    btrain("eval", "--model", tmp_path / "doa", "--shards", shard, "--report", tmp_path / "rep3")
    rows = (tmp_path / "rep3" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 14 and sorted(int(r.split(",")[6]) for r in rows[1:]) == list(range(13))  # each once


def test_validation_keeps_the_best_step_and_eval_scores_it(pretrained, tmp_path):
    args = ["finetune", "--init", pretrained, "--on-the-fly", *TINY, "--set", "train.steps=30",
            "--set", "train.labelled_examples=64", "--set", "train.log_every=5", "--quiet"]
    btrain(*args, "--set", "train.val_examples=16", "--set", "train.val_every=10", "--out", tmp_path / "val")
    btrain(*args, "--out", tmp_path / "plain")
    assert losses(tmp_path / "val") == losses(tmp_path / "plain")  # validating never changes the training
    rows = (tmp_path / "val" / "val.csv").read_text().splitlines()
    assert rows[0] == "step,val_mae_deg"
    val = {int(r.split(",")[0]): float(r.split(",")[1]) for r in rows[1:]}
    assert sorted(val) == [10, 20, 30]
    best_step = min(val, key=lambda k: (val[k], k))
    state = (tmp_path / "val" / "best" / "state.yaml").read_text().split()
    assert state[0] == "step:" and int(state[1]) == best_step and float(state[3]) == pytest.approx(val[best_step], abs=1e-4)  # val.csv: 6 digits
    assert (tmp_path / "val" / "best" / "model.pt").exists() and not (tmp_path / "plain" / "best").exists()
    # btrain eval scores the best step: on the validation examples (the derived seed, the same 16) it finds
    # the validation error of that step.
    seed = (1234 * 6364136223846793005 + 1442695040888963407) % 2**64
    p = btrain("eval", "--model", tmp_path / "val", "--report", tmp_path / "rep", "--examples", 16, "--seed", seed)
    assert f"best validation step {best_step}" in p.stderr
    assert f"best validation step {best_step}" in (tmp_path / "rep" / "summary.md").read_text()
    maes = [float(x) for x in p.stdout.split("|") if x.strip().replace(".", "", 1).isdigit()]
    assert maes[1] == pytest.approx(val[best_step], abs=1e-3), p.stdout  # | examples | MAE | ...
    # Resumed from step 20 to 30, the validation log and the best step come out the same.
    short = [a if a != "train.steps=30" else "train.steps=20" for a in args]
    vargs = ["--set", "train.val_examples=16", "--set", "train.val_every=10", "--set", "train.checkpoint_every=10"]
    btrain(*short, *vargs, "--out", tmp_path / "res")
    btrain(*args, *vargs, "--out", tmp_path / "res", "--resume")
    assert (tmp_path / "res" / "val.csv").read_text() == (tmp_path / "val" / "val.csv").read_text()
    assert (tmp_path / "res" / "best" / "state.yaml").read_text() == (tmp_path / "val" / "best" / "state.yaml").read_text()
    bad = [a for a in args if a != "--on-the-fly"]
    one_error_line(btrain(*bad, "--set", "train.val_examples=16", "--shards", small_shard(tmp_path, "s.h5"),
                          "--out", tmp_path / "bad", check=False), "val_examples")
    assert not (tmp_path / "bad").exists()


def test_validation_on_a_held_out_head(pretrained, tmp_path, shared_hrtf_dir):
    """train.val_sofa renders the validation examples with other heads than training: the training is untouched,
    the validation scores change; a missing file or a val_sofa without validation examples is one line."""
    if shared_hrtf_dir is None:
        pytest.skip("no ../shared/hrtf beside the checkout")
    args = ["finetune", "--init", pretrained, "--on-the-fly", *TINY, "--set", "train.steps=20",
            "--set", "train.labelled_examples=64", "--set", "train.log_every=5", "--set", "train.val_examples=16",
            "--set", "train.val_every=10", "--quiet"]
    held_out = shared_hrtf_dir / "CIPIC_subject_003_hrir_final.sofa"
    btrain(*args, "--out", tmp_path / "same")
    btrain(*args, "--set", f"train.val_sofa=[{held_out}]", "--out", tmp_path / "held")
    assert losses(tmp_path / "held") == losses(tmp_path / "same")
    same = (tmp_path / "same" / "val.csv").read_text().splitlines()
    held = (tmp_path / "held" / "val.csv").read_text().splitlines()
    assert len(held) == len(same) == 3 and held[1:] != same[1:], (same, held)
    assert "val_sofa:" in (tmp_path / "held" / "config.yaml").read_text()
    one_error_line(btrain(*args, "--set", "train.val_sofa=[/nonexistent/held.sofa]", "--out", tmp_path / "bad",
                          check=False), "/nonexistent/held.sofa", "train.val_sofa")
    one_error_line(btrain(*args, "--set", "train.val_examples=0",  # the later --set wins
                          "--set", f"train.val_sofa=[{held_out}]", "--out", tmp_path / "bad", check=False), "val_examples")
    assert not (tmp_path / "bad").exists()


def test_encoder_learning_rate_scale(pretrained, tmp_path):
    """train.encoder_lr_scale=0 freezes the encoder (a linear probe: encoder.pt stays the pretrained one, bit for
    bit, while the head learns); a scale between 0 and 1 moves it, but less than the default; pretraining
    refuses the key."""
    torch = pytest.importorskip("torch")
    args = ["finetune", "--init", pretrained, "--on-the-fly", *TINY, "--set", "train.steps=20",
            "--set", "train.labelled_examples=64", "--set", "train.log_every=5", "--quiet"]
    runs = {}
    for scale in ["0", "0.1", "1"]:
        btrain(*args, "--set", f"train.encoder_lr_scale={scale}", "--out", tmp_path / scale)
        runs[scale] = torch.load(tmp_path / scale / "encoder.pt")
    init = torch.load(pretrained / "encoder.pt")
    moved = {s: sum(float((sd[k] - init[k]).abs().sum()) for k in init) for s, sd in runs.items()}
    assert moved["0"] == 0.0 and 0 < moved["0.1"] < 0.5 * moved["1"], moved
    l0 = losses(tmp_path / "0")
    assert l0[20] < l0[5], l0  # the head alone still learns
    # The default is one parameter group as before: the same losses as a run that does not name the key.
    btrain(*args, "--out", tmp_path / "plain")
    assert losses(tmp_path / "plain") == losses(tmp_path / "1")
    # Resuming a frozen run keeps it frozen and gives the uninterrupted losses.
    short = [a if a != "train.steps=20" else "train.steps=10" for a in args]
    frozen = ["--set", "train.encoder_lr_scale=0", "--set", "train.checkpoint_every=10"]
    btrain(*short, *frozen, "--out", tmp_path / "res")
    btrain(*args, *frozen, "--out", tmp_path / "res", "--resume")
    assert losses(tmp_path / "res") == pytest.approx(l0, rel=1e-5)
    assert all(torch.equal(torch.load(tmp_path / "res" / "encoder.pt")[k], init[k]) for k in init)
    one_error_line(btrain("pretrain", "--on-the-fly", *TINY, "--set", "train.encoder_lr_scale=0.5",
                          "--out", tmp_path / "bad", check=False), "encoder_lr_scale", "finetune")
    one_error_line(btrain(*args, "--set", "train.encoder_lr_scale=-1", "--out", tmp_path / "bad", check=False),
                   "encoder_lr_scale")
    assert not (tmp_path / "bad").exists()


def test_interrupted_run_resumes_to_identical_losses(tmp_path):
    args = ["pretrain", "--on-the-fly", *TINY, "--set", "train.steps=60", "--set", "train.log_every=1",
            "--set", "train.checkpoint_every=1000", "--quiet"]
    btrain(*args, "--out", tmp_path / "a")
    p = subprocess.Popen([BTRAIN, *map(str, args), "--out", str(tmp_path / "b")], stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    if p.returncode == 0:
        pytest.skip("training finished before the interrupt on this machine")
    assert p.returncode == 130 and "--resume" in err, err
    stopped = int((tmp_path / "b" / "checkpoint" / "state.yaml").read_text().split()[1])
    assert 0 < stopped < 60
    btrain(*args, "--out", tmp_path / "b", "--resume")
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(b) == list(range(1, 61))
    for step in range(stopped + 1, 61):
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-7), step


def small_shard(tmp_path, name, *extra):
    path = tmp_path / name
    subprocess.run([os.environ.get("BSIM", str(ROOT / "build" / "apps" / "bsim")), "generate", "--rooms", "32",
                    "--out", path, *TINY, "--quiet", *extra], check=True, capture_output=True)
    return path


def test_training_from_shards_and_bad_input(pretrained, tmp_path):
    shard = small_shard(tmp_path, "s.h5")
    run = tmp_path / "from_shard"
    btrain("pretrain", "--shards", shard, *TINY, "--set", "train.steps=10", "--set", "train.checkpoint_every=5",
           "--out", run, "--quiet")
    assert max(losses(run)) == 10

    # A NaN in the data stops training at once and leaves the last good checkpoint alone.
    nan_shard = tmp_path / "nan.h5"
    nan_shard.write_bytes(shard.read_bytes())
    with h5py.File(nan_shard, "r+") as f:
        f["augmented"][:, 0, 100] = np.nan
    before = hashlib.sha256((run / "checkpoint" / "model.pt").read_bytes()).hexdigest()
    p = btrain("pretrain", "--shards", nan_shard, *TINY, "--set", "train.steps=20", "--out", run, "--resume",
               check=False)
    one_error_line(p, "NaN", "step 10", code=3)
    assert hashlib.sha256((run / "checkpoint" / "model.pt").read_bytes()).hexdigest() == before
    assert (run / "checkpoint" / "state.yaml").read_text().startswith("step: 10")

    # A shard without teacher features cannot feed pretraining.
    no_teacher = tmp_path / "noteacher.h5"
    no_teacher.write_bytes(shard.read_bytes())
    with h5py.File(no_teacher, "r+") as f:
        del f["teacher"]
    one_error_line(btrain("pretrain", "--shards", no_teacher, *TINY, "--out", tmp_path / "noteacher_run", check=False),
                   "no teacher features")

    one_error_line(btrain("finetune", "--init", tmp_path / "missing", "--on-the-fly", *TINY, "--out", tmp_path / "y",
                          check=False), "missing", "does not exist")
    one_error_line(btrain("finetune", "--init", pretrained, "--on-the-fly", *TINY, "--set", "model.width=32",
                          "--out", tmp_path / "z", check=False), "proj.weight", "model.* settings")
    one_error_line(btrain("pretrain", "--on-the-fly", *TINY, "--out", run, check=False), "--resume")
    one_error_line(btrain("pretrain", "--on-the-fly", *TINY, "--set", "model.layers=2", "--out", run, "--resume",
                          check=False), "another configuration")
    one_error_line(btrain("pretrain", *TINY, "--out", tmp_path / "w", check=False), "--on-the-fly or --shards")
    # GPU batches without GPU training: refused before a run folder appears.
    one_error_line(btrain("pretrain", "--on-the-fly", *TINY, "--set", "train.simulator=cuda", "--set", "train.device=cpu",
                          "--out", tmp_path / "v", check=False), "train.simulator=cuda")
    assert not (tmp_path / "v").exists()
    assert not (tmp_path / "noteacher_run").exists()


def test_preloaded_shard_gives_the_same_training_as_streaming(tmp_path):
    shard = small_shard(tmp_path, "p.h5")
    args = ["pretrain", "--shards", shard, *TINY, "--set", "train.steps=8", "--set", "train.log_every=1", "--quiet"]
    btrain(*args, "--out", tmp_path / "streamed")
    btrain(*args, "--preload", "--out", tmp_path / "preloaded")
    a, b = losses(tmp_path / "streamed"), losses(tmp_path / "preloaded")
    assert sorted(a) == list(range(1, 9))
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-6), k
    one_error_line(btrain("pretrain", "--on-the-fly", "--preload", *TINY, "--out", tmp_path / "x", check=False),
                   "--preload goes with --shards")
