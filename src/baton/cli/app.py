"""The ``baton`` Typer app: every command group, registered in one place.

A new group (``serve``, ``tokens``, ``sweep``, ``du``, ``worker``, ``submit``) is a module beside
these and one line here. Command modules import the core inside their commands, so building this app
(which ``--help`` does) stays cheap. The app's shell (settings, group class, ``--version``) is
:mod:`baton.cli.shell`'s.
"""

from __future__ import annotations

from baton.cli.answer import answer_cmd
from baton.cli.budget import budget_cmd
from baton.cli.demo import demo_cmd
from baton.cli.doctor import agents_cmd, doctor_cmd
from baton.cli.forge import forge_app
from baton.cli.homes import homes_app
from baton.cli.housekeeping import du_cmd, sweep_cmd
from baton.cli.mcp import mcp_cmd
from baton.cli.plan import plan_app
from baton.cli.quota import quota_app
from baton.cli.run import run_cmd
from baton.cli.runs import runs_app
from baton.cli.serve import serve_cmd
from baton.cli.sessions import sessions_app
from baton.cli.shell import EPILOG, Group, make_app
from baton.cli.submit import submit_cmd
from baton.cli.sync import sync_cmd
from baton.cli.tokens import audit_cmd, tokens_app
from baton.cli.worker import worker_cmd

app = make_app()
app.command("run", epilog=EPILOG)(run_cmd)
app.command("submit", epilog=EPILOG)(submit_cmd)
app.command("answer", epilog=EPILOG)(answer_cmd)
app.command("budget")(budget_cmd)
app.add_typer(sessions_app, name="sessions")
app.add_typer(runs_app, name="runs")
app.add_typer(plan_app, name="plan")
app.command("agents")(agents_cmd)
app.command("doctor")(doctor_cmd)
app.add_typer(homes_app, name="homes")
app.command("demo")(demo_cmd)
app.command("serve")(serve_cmd)
app.command("worker")(worker_cmd)
app.command("mcp")(mcp_cmd)
app.add_typer(tokens_app, name="tokens")
app.add_typer(forge_app, name="forge")
app.command("audit")(audit_cmd)
app.command("sweep")(sweep_cmd)
app.command("du")(du_cmd)
app.command("sync")(sync_cmd)
app.add_typer(quota_app, name="quota")
for _group in app.registered_groups:  # every group's help lists its commands as the app's does
    _group.cls = Group
