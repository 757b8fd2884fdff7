"""leadpush: load leads into Ozonetel CloudAgent outbound campaigns."""

__version__ = "0.1.0"
