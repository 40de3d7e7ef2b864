"""How the nightly cycle moves a model forward: retraining, promotion through gates, and the ratchet."""
