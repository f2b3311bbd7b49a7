"""A local emulator of Amazon Bedrock AgentCore Memory that speaks the real AWS wire protocol.

boto3, ``bedrock_agentcore.memory.MemoryClient`` and Strands' ``AgentCoreMemorySessionManager`` work against it
unchanged once ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`` and ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL`` point at
it. ``store`` holds the durable SQLite store, ``app`` the HTTP application (both planes on one port), and
``python -m lab_helpers.agentcore_local serve`` runs it (port and database default to ``LAB_EMULATOR_PORT`` and
``LAB_EMULATOR_DB``, see :mod:`lab_helpers.config`). See ``store`` for what is emulated and how;
:func:`lab_helpers.memory.use_agentcore` starts it for a notebook.
"""
