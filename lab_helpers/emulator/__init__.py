"""A local emulator of Amazon Bedrock AgentCore (Memory and Runtime) that speaks the real AWS wire protocol.

boto3, ``bedrock_agentcore.memory.MemoryClient``, Strands' ``AgentCoreMemorySessionManager`` and
``bedrock_agentcore.runtime.AgentCoreRuntimeClient`` work against it unchanged once
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`` and ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL`` point at it.
Plumbing: read it to see how AWS behaves, not to learn a lesson's pattern.

* ``memory_store``: AgentCore Memory's memories and events, durable in SQLite;
* ``memory_records``: long-term memory (extraction after each event, records, search), part of the same store;
* ``page_tokens``: the ``nextToken`` of every list operation, opaque and checked;
* ``extractors``: long-term memory's extraction (facts, summaries, preferences): an offline rule-based stand-in,
  a literal copy, or the model ``LAB_MODEL`` names;
* ``runtime_sessions``: AgentCore Runtime's runtimes, one process per session, and its session lifecycle;
* ``api``: the rest-json HTTP application of both planes (data and control) on one port;
* ``errors``: the AWS error types both answer with;
* ``local_iam``: optional local IAM (off by default): SigV4 checked against local principals, their policies evaluated;
* ``shapes``: every request checked against botocore's input shape for its operation (and the output-shape
  checker the tests use), in one place;
* ``__main__``: ``python -m lab_helpers.emulator serve`` (port and database default to ``LAB_EMULATOR_PORT`` and
  ``LAB_EMULATOR_DB``, see :mod:`lab_helpers.config`).

:func:`lab_helpers.agentcore.use_agentcore` starts it for a notebook.
"""
