"""The patterns the lessons teach, as small modules the servers in ``servers/`` are built from.

Read these to learn how each pattern is written; everything in ``lab_helpers/`` is plumbing you may ignore.

* ``heartbeat``: notebook 01, a time-based heartbeat that keeps a long call alive and stops with its work;
* ``event_store``: notebook 01, the event store behind resumable streams (replay after a dropped connection);
* ``task_registry``: notebook 02, background work behind task ids: start, status, result, cancel, expiry;
* ``tool_errors``: every server, how bad input and failed lookups become MCP tool errors;
* ``caller_identity``: notebook 03, whose task a call is, from AgentCore Runtime's custom headers;
* ``task_records``: notebook 03, how a task's fate is written to AgentCore Memory as an event;
* ``memory_outbox``: notebook 03, how those events reach Memory (outbox, retries) and are read back.
* ``worker_pool``: notebooks 02 and 03, the bounded pool that runs the work off the event loop (``queued`` beyond it);
* ``task_input``: notebook 08, a task that pauses for the user's answer (``input_required``) and its deadline;
* ``task_watch``: notebook 08, status pushed to a watching client, with polling as the fallback.

The package lives in ``servers/`` so that a server script and its patterns deploy together (AgentCore Runtime
runs the directory it is given); ``pyproject.toml`` makes it importable as ``patterns`` everywhere else.
"""
