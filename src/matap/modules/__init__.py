"""Building blocks, each registered by name: the spatial encoder and decoder, the recurrent cells,
the predictors."""

from matap.modules.cells import Cell, GRUBaselineCell, MATAPCell
from matap.modules.decoder import AppearanceDecoder, SkipDecoder, SpatialDecoder
from matap.modules.encoder import SpatialEncoder
from matap.modules.predictor import LatentPredictor, VelocityPredictor

__all__ = ["AppearanceDecoder", "Cell", "GRUBaselineCell", "LatentPredictor", "MATAPCell", "SkipDecoder", "SpatialDecoder",
           "SpatialEncoder", "VelocityPredictor"]
