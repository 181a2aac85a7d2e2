"""MLflow tracking and registry (the library's only MLflow-aware package; imported lazily)."""
