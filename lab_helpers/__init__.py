"""The workbench's plumbing: what the notebooks, servers and tests use around the patterns they teach.

Nothing here is a lesson's subject. The patterns are in ``servers/patterns/`` (importable as ``patterns``) and the
servers built from them in ``servers/``; read those to learn how long-running work is done. One module per job:

* ``config``: the one settings object (``Settings``, ``load``), read from the ``LAB_*`` environment variables;
* ``processes``: start a script from ``servers/`` as a process on a free port, stop it, never leave one behind;
* ``asgi``: how every server is built and served (``LabMCPServer``, ``serve``, ``/health``, the command line);
* ``mcp_client``: open an MCP client session in one line; count the notifications that arrive;
* ``widgets``: ``ProgressPanel`` (a live progress bar) and ``TaskBoard`` (a live table of tasks);
* ``show_code``: display a named function or class of a tested file in a notebook;
* ``waiting``: ``eventually``, the one way to wait until something is true, with a live status line;
* ``training``: the real workload, a small NumPy classifier trained epoch by epoch;
* ``proxy``: ``DropProxy``, a network drop you trigger;
* ``models``: the agents' model (an offline stand-in, Bedrock, or an OpenAI-compatible server);
* ``agentcore``: ``use_agentcore`` (the local emulator or AWS) and ``get_or_create_memory``;
* ``deploy``: deploy to AgentCore Runtime, invoke, and remove exactly what was deployed;
* ``timeline``: runtime sessions' states, live while a lesson waits and as a timeline after;
* ``redis_server``: a ``redis-server`` for notebook 05's durable task backend;
* ``doctor`` and ``run_notebooks``: ``python -m lab_helpers doctor`` and ``python -m lab_helpers run``;
* ``install``: fill ``.venv`` with the pinned packages (uv, else pip), run by ``make lab`` and ``make test``;
* ``emulator``: the local AgentCore emulator (Memory and Runtime), ``python -m lab_helpers.emulator serve``;
  ``agentcore_local`` is its former name, kept as an alias.
"""

from lab_helpers.config import Settings, load

__all__ = ["Settings", "load"]
