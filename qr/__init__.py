"""Stickers: QR labels for units, elevators and areas, rendered as SVG, PNG and printable sheets."""
