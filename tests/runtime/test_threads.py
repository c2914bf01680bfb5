"""The default thread count: the CPUs this process may use (affinity mask, cgroup v1/v2 CPU quota)."""
import shutil
import subprocess
import sys
import textwrap

import pytest

from uniparser_sdk.runtime import cpus


def _cgroup_tree(tmp_path, version, files: dict, proc_path="/kubepods/pod1/ctr"):
    """A cgroup hierarchy on disk as /proc/self/{cgroup,mountinfo} describe it (real files)."""
    mount = tmp_path / ("cg2" if version == 2 else "cpu,cpuacct")
    for rel, text in files.items():
        d = mount / rel.strip("/")
        d.mkdir(parents=True, exist_ok=True)
        for name, value in text.items():
            (d / name).write_text(value + "\n")
    if version == 2:
        cgroup = f"0::{proc_path}\n"
        info = f"30 23 0:26 / {mount} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    else:
        cgroup = f"12:memory:{proc_path}\n4:cpu,cpuacct:{proc_path}\n1:name=systemd:/\n"
        info = (f"33 25 0:29 / {tmp_path / 'mem'} rw - cgroup cgroup rw,memory\n"
                f"34 25 0:30 / {mount} rw - cgroup cgroup rw,cpu,cpuacct\n")
    (tmp_path / "cgroup").write_text(cgroup)
    (tmp_path / "mountinfo").write_text("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" + info)
    return str(tmp_path / "cgroup"), str(tmp_path / "mountinfo")


def test_cgroup_v2_cpu_max(tmp_path):
    args = _cgroup_tree(tmp_path, 2, {"/": {"cpu.max": "max 100000"},
                                      "/kubepods": {"cpu.max": "400000 100000"},
                                      "/kubepods/pod1": {"cpu.max": "max 100000"},
                                      "/kubepods/pod1/ctr": {"cpu.max": "150000 100000"}})
    assert cpus.cgroup_cpu_limit(*args) == 1.5  # the tightest limit on the path up to the root


def test_cgroup_v2_unlimited(tmp_path):
    args = _cgroup_tree(tmp_path, 2, {"/": {}, "/kubepods/pod1/ctr": {"cpu.max": "max 100000"}})
    assert cpus.cgroup_cpu_limit(*args) is None


def test_cgroup_v1_quota(tmp_path):
    args = _cgroup_tree(tmp_path, 1, {"/": {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"},
                                      "/kubepods/pod1/ctr": {"cpu.cfs_quota_us": "250000",
                                                             "cpu.cfs_period_us": "100000"}})
    assert cpus.cgroup_cpu_limit(*args) == 2.5
    args = _cgroup_tree(tmp_path / "u", 1, {"/kubepods/pod1/ctr": {"cpu.cfs_quota_us": "-1",
                                                                   "cpu.cfs_period_us": "100000"}})
    assert cpus.cgroup_cpu_limit(*args) is None


def test_cgroup_namespace_root(tmp_path):
    """Inside a container the cgroup namespace shows the process at "/", the mount root is its cgroup."""
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cpu.max").write_text("200000 100000\n")
    (tmp_path / "cgroup").write_text("0::/\n")
    (tmp_path / "mountinfo").write_text(f"30 23 0:26 / {mount} rw - cgroup2 cgroup2 rw\n")
    assert cpus.cgroup_cpu_limit(str(tmp_path / "cgroup"), str(tmp_path / "mountinfo")) == 2.0
    assert cpus.cgroup_cpu_limit(str(tmp_path / "missing"), str(tmp_path / "mountinfo")) is None


def test_resolve_threads():
    from uniparser_sdk.errors import UserInputError

    assert cpus.resolve_threads(3) == 3
    assert cpus.resolve_threads(None) == cpus.available_cpus() >= 1
    assert cpus.available_cpus() <= cpus.affinity_cpus()
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(UserInputError):
            cpus.resolve_threads(bad)


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset not installed")
def test_affinity_default_under_taskset(tmp_path):
    """Under ``taskset -c 0`` the default is 1 thread -- in cpus, in the Parser's ONNX Runtime session
    options, and in the CLI's --threads default -- whatever os.cpu_count() says."""
    code = textwrap.dedent("""
        import os
        from uniparser_sdk.runtime.cpus import affinity_cpus, available_cpus
        from uniparser_sdk.runtime.parser import onnxruntime_session_options
        from uniparser_sdk.cli.predict import build_parser
        so = onnxruntime_session_options()
        args = build_parser().parse_args(["m.onnx", "x.png"])
        print(os.cpu_count(), affinity_cpus(), available_cpus(), so.intra_op_num_threads, args.threads)
    """)
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    host, aff, avail, ort_threads, cli_threads = out.stdout.split()
    assert (aff, avail, ort_threads) == ("1", "1", "1")
    assert cli_threads == "None"  # the CLI passes None on: Parser resolves it to available_cpus()
