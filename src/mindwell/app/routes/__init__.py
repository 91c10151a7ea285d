"""The server's routes, one module per surface: ``site`` (page, docs, health), ``app_api``
(/api/v1), ``openai_api`` (/v1) and ``ollama_api`` (/api), with what they share in
``deps`` (service, auth, limits, errors), ``body`` and ``compat``."""
