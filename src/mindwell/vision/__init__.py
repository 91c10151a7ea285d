"""Faces: detection and 7-class emotion, offline (extra: pip install 'mindwell[vision]')."""
