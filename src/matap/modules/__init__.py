"""Building blocks: the spatial encoder and decoder, the recurrent cells, the predictor."""

from matap.modules.cells import Cell, GRUBaselineCell, MATAPCell
from matap.modules.decoder import BroadcastDecoder, SpatialDecoder
from matap.modules.encoder import SpatialEncoder
from matap.modules.predictor import LatentPredictor

__all__ = ["BroadcastDecoder", "Cell", "GRUBaselineCell", "MATAPCell", "SpatialDecoder", "SpatialEncoder", "LatentPredictor"]
