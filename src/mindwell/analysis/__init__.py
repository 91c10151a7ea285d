"""Text analysis: classifiers, metrics and reports."""
