"""Self-supervised homographic training (KP2D recipe) with ANA quantisation."""
