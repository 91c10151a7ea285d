"""mindwell export: trained runs to GGUF, Ollama and fast classifiers, verified."""
