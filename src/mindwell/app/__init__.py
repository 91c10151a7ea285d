"""mindwell serve: the diary and counselor web app."""
