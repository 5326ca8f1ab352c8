"""hyperisp.runtime: the allocator setting the CLI applies (in a child process: it is process-wide)."""
import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux only")
def test_keep_freed_memory_applies_once_and_allocations_still_work():
    code = (
        "import torch\n"
        "from hyperisp.runtime import keep_freed_memory\n"
        "first, again = keep_freed_memory(), keep_freed_memory()\n"
        "a = torch.ones(64, 1024, 1024); b = a + a; del a, b\n"
        "c = torch.ones(64, 1024, 1024) * 3\n"
        "print(first, again, float(c.sum()) == 3 * 64 * 1024 * 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if out[0] == "False":
        pytest.skip("not glibc")
    assert out == ["True", "True", "True"]
