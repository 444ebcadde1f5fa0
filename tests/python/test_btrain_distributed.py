"""btrain data-parallel on the CPU (c10d Gloo): two ranks, each with half of every batch, train the model one
process trains (same losses, same weights up to the order of float sums), from on-the-fly data and from shards,
with validation; a stop request on one rank stops both at the same step with the checkpoint written, and a run
resumes on another number of ranks; bad launches stop with one line and write nothing."""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from test_btrain import BTRAIN, TINY, btrain, losses, one_error_line, small_shard

torch = pytest.importorskip("torch")
TORCHRUN = pathlib.Path(sys.executable).parent / "torchrun"
pytestmark = pytest.mark.skipif(not os.path.exists(BTRAIN), reason="btrain not built (no libtorch)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(n, *args, only=None, **extra_env):
    """Starts n btrain processes as a launcher would (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), or
    only the ranks listed in `only`."""
    port = free_port()
    procs = []
    for rank in range(n) if only is None else only:
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(n), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), **extra_env)
        procs.append(subprocess.Popen([BTRAIN, *map(str, args)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, timeout=600):
    out = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        out.append((p.returncode, err))
    return out


def ranks(n, *args):
    results = finish(start_ranks(n, *args))
    for rank, (code, err) in enumerate(results):
        assert code == 0, f"rank {rank} of {n} failed ({code}):\n{err}"
    return results


def assert_same_model(run_a, run_b):
    a, b = torch.load(pathlib.Path(run_a) / "encoder.pt"), torch.load(pathlib.Path(run_b) / "encoder.pt")
    assert sorted(a) == sorted(b)
    for k in a:
        # Float sums in another order (smaller batches, then their mean) after 20 Adam steps: measured 1e-7 (two
        # ranks) to 5e-4 (four) of each tensor's norm apart; each rank on its share alone: 0.01-1.2.
        assert float((a[k] - b[k]).norm()) <= 5e-3 * float(a[k].norm()), (k, float((a[k] - b[k]).norm() / a[k].norm()))


def assert_same_losses(run_a, run_b):
    la, lb = losses(run_a), losses(run_b)
    assert sorted(la) == sorted(lb)
    for step in la:
        assert lb[step] == pytest.approx(la[step], rel=1e-5), (step, la, lb)


PRE = ["pretrain", "--on-the-fly", *TINY, "--set", "train.steps=20", "--set", "train.log_every=5", "--quiet"]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    run = tmp_path_factory.mktemp("dp") / "single"
    btrain(*PRE, "--out", run)
    return run


def test_two_ranks_under_torchrun_train_the_single_process_model(single, tmp_path):
    if not TORCHRUN.exists():
        pytest.skip("no torchrun beside this Python")
    p = subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node", "2", "--no-python", BTRAIN, *map(str, PRE),
                        "--out", tmp_path / "dp"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert_same_losses(single, tmp_path / "dp")
    assert_same_model(single, tmp_path / "dp")
    # Without the gradient all-reduce each rank would learn from its half alone: the losses would differ from
    # the second logged step on. Four ranks of two examples each agree as well.
    ranks(4, *PRE, "--out", tmp_path / "dp4")
    assert_same_losses(single, tmp_path / "dp4")
    assert_same_model(single, tmp_path / "dp4")


def test_a_run_resumes_on_another_number_of_ranks(single, tmp_path):
    short = [a if a != "train.steps=20" else "train.steps=10" for a in PRE]
    ranks(2, *short, "--set", "train.checkpoint_every=10", "--out", tmp_path / "r")
    btrain(*PRE, "--set", "train.checkpoint_every=10", "--out", tmp_path / "r", "--resume")
    assert_same_losses(single, tmp_path / "r")
    assert_same_model(single, tmp_path / "r")
    # And back: one process to step 10, two ranks from there.
    btrain(*short, "--set", "train.checkpoint_every=10", "--out", tmp_path / "s")
    ranks(2, *PRE, "--set", "train.checkpoint_every=10", "--out", tmp_path / "s", "--resume")
    assert_same_losses(single, tmp_path / "s")


def test_fine_tuning_from_shards_and_with_validation(single, tmp_path):
    fin = ["finetune", "--init", single, *TINY, "--set", "train.steps=20", "--set", "train.log_every=5", "--quiet"]
    shard = small_shard(tmp_path, "s.h5")
    btrain(*fin, "--shards", shard, "--out", tmp_path / "shard1")
    ranks(2, *fin, "--shards", shard, "--out", tmp_path / "shard2")
    assert_same_losses(tmp_path / "shard1", tmp_path / "shard2")
    val = ["--on-the-fly", "--set", "train.labelled_examples=64", "--set", "train.val_examples=16",
           "--set", "train.val_every=10"]
    btrain(*fin, *val, "--out", tmp_path / "val1")
    ranks(2, *fin, *val, "--out", tmp_path / "val2")
    assert_same_losses(tmp_path / "val1", tmp_path / "val2")
    v1 = [r.split(",") for r in (tmp_path / "val1" / "val.csv").read_text().splitlines()[1:]]
    v2 = [r.split(",") for r in (tmp_path / "val2" / "val.csv").read_text().splitlines()[1:]]
    assert [s for s, _ in v1] == [s for s, _ in v2] == ["10", "20"]
    assert all(float(a) == pytest.approx(float(b), abs=1e-3) for (_, a), (_, b) in zip(v1, v2)), (v1, v2)  # 6 digits
    assert (tmp_path / "val2" / "best" / "model.pt").exists()


def test_a_stop_on_one_rank_stops_both_at_one_step(single, tmp_path):
    args = [a if a != "train.steps=20" else "train.steps=400" for a in PRE]
    args += ["--set", "train.checkpoint_every=1000"]
    procs = start_ranks(2, *args, "--out", tmp_path / "b")
    deadline = time.time() + 120
    while not (tmp_path / "b" / "log.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    procs[1].send_signal(signal.SIGINT)  # the follower only: the leader learns of it through the all-reduce
    (code0, err0), (code1, err1) = finish(procs)
    if code0 == 0:
        pytest.skip("training finished before the interrupt on this machine")
    assert code0 == 130 and code1 == 130, (err0, err1)
    assert "--resume" in err0
    stopped = int((tmp_path / "b" / "checkpoint" / "state.yaml").read_text().split()[1])
    assert 0 < stopped < 400
    assert f"interrupted at step {stopped};" in err0 and f"interrupted at step {stopped};" in err1


def test_a_hung_rank_stops_the_others_after_the_timeout(tmp_path):
    """A rank that stops answering (suspended here; a hang in its data, a stuck GPU) holds the others in the next
    all-reduce for train.dist_timeout_s, not for Gloo's 30 minutes; a rank whose peers never start waits as long
    to join. Each then stops with one line naming the key."""
    args = [a if a != "train.steps=20" else "train.steps=2000" for a in PRE]
    args += ["--set", "train.checkpoint_every=100000", "--set", "train.dist_timeout_s=4"]
    procs = start_ranks(2, *args, "--out", tmp_path / "hung")
    deadline = time.time() + 120
    while not (tmp_path / "hung" / "log.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    procs[1].send_signal(signal.SIGSTOP)
    t0 = time.time()
    try:
        _, err0 = procs[0].communicate(timeout=120)
    finally:
        procs[1].kill()
        procs[1].communicate()
    if procs[0].returncode == 0:
        pytest.skip("training finished before the suspension on this machine")
    assert 3 <= time.time() - t0 < 60, time.time() - t0
    assert procs[0].returncode == 3, err0
    errs = [l for l in err0.splitlines() if l.startswith("btrain: error:")]
    assert len(errs) == 1 and "no answer from another rank within train.dist_timeout_s=4 s" in errs[0], err0
    for rank in (0, 1):  # the leader listening for a follower that never comes; a follower finding no leader
        (alone,) = start_ranks(2, *args, "--out", tmp_path / "alone", only=[rank])
        t0 = time.time()
        _, err = alone.communicate(timeout=120)
        assert 1 <= time.time() - t0 < 60 and alone.returncode == 3, (rank, alone.returncode, err)
        assert f"RANK={rank} of 2: cannot join the ranks at 127.0.0.1:" in err, err
        assert "within train.dist_timeout_s=4 s (did every rank start?)" in err, err
        assert not (tmp_path / "alone").exists()


def test_bad_launches_say_what_to_do(single, tmp_path):
    # train_tiny's batch of 8 does not split over 3 ranks; every rank says so before any group forms.
    for code, err in finish(start_ranks(3, *PRE, "--out", tmp_path / "three")):
        assert code == 2, err
        errs = [l for l in err.splitlines() if l.startswith("btrain: error:")]
        assert len(errs) == 1 and "train.batch_size=8 does not split over 3 ranks" in errs[0], err
    assert not (tmp_path / "three").exists()
    # The leader fails after the group formed (its run folder cannot be made): the follower stops at once.
    (code0, err0), (code1, err1) = finish(start_ranks(2, *PRE, "--out", "/dev/null/run"), timeout=120)
    assert code0 == 2 and "cannot create run folder '/dev/null/run'" in err0, err0
    assert code1 == 3 and "another rank stopped?" in err1, err1
    for code, err in finish(start_ranks(2, *PRE, "--out", tmp_path / "ifname", GLOO_SOCKET_IFNAME="nosuch0")):
        assert code == 2, err
        assert "GLOO_SOCKET_IFNAME='nosuch0': this machine has no network interface 'nosuch0'" in err, err
    assert not (tmp_path / "ifname").exists()
    # A rank waiting for the others to join ends at once on SIGTERM (Ctrl-C alike), not after the store's 300 s.
    (alone,) = start_ranks(2, *PRE, "--out", tmp_path / "alone", only=[0])
    time.sleep(3)
    alone.send_signal(signal.SIGTERM)
    _, err = alone.communicate(timeout=30)
    assert alone.returncode == -signal.SIGTERM, (alone.returncode, err)
    assert not (tmp_path / "alone").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    p = subprocess.run([BTRAIN, *PRE, "--out", tmp_path / "nomaster"], env=dict(env, RANK="0", WORLD_SIZE="2"),
                       capture_output=True, text=True, timeout=120)
    one_error_line(p, "RANK=0 of 2", "MASTER_ADDR and MASTER_PORT")
    assert not (tmp_path / "nomaster").exists()
    p = subprocess.run([BTRAIN, *PRE, "--out", tmp_path / "port"],
                       env=dict(env, RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="http"),
                       capture_output=True, text=True, timeout=120)
    one_error_line(p, "MASTER_PORT='http'")
    p = subprocess.run([BTRAIN, "eval", "--model", single, "--report", tmp_path / "rep", "--seed", "7"],
                       env=dict(env, RANK="1", WORLD_SIZE="2"), capture_output=True, text=True, timeout=120)
    one_error_line(p, "RANK=1 of 2", "btrain eval runs in one process")
    assert not (tmp_path / "rep").exists()
