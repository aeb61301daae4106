"""``make demo``: a local archipelago of three chambers (see ``demo.archipelago``)."""
