"""``python -m hyperisp``: the same CLI as the ``hyperisp`` command (for environments without the entry point)."""
from .cli import app

app(prog_name="hyperisp")
