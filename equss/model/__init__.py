"""The trainable model: head (expansion), product quantiser, STEGO loss, probes.

| module | what |
|---|---|
| :mod:`~equss.model.heads` | ``ProjectionHead``: STEGO's head and EQUSS's expansion head |
| :mod:`~equss.model.quantize` | ``ProductQuantizer``: Eq. 1-4 (``assign`` is Eq. 2) |
| :mod:`~equss.model.losses` | STEGO's contrastive correlation loss (L_head of Eq. 5) |
| :mod:`~equss.model.probes` | cluster and linear probes |
| :mod:`~equss.model.upsample` | exact probes on bilinearly upsampled features, not materialised |
| :mod:`~equss.model.equss` | ``EQUSS``: head -> PQ -> probes; ``training_losses`` is Eq. 5 |
"""
from equss.model.equss import EQUSS, ModelOutput
from equss.model.heads import ProjectionHead
from equss.model.losses import CorrelationLoss
from equss.model.probes import ClusterProbe, LinearProbe
from equss.model.quantize import PQOutput, ProductQuantizer, assign

__all__ = ["EQUSS", "ModelOutput", "ProjectionHead", "CorrelationLoss", "ClusterProbe", "LinearProbe",
           "PQOutput", "ProductQuantizer", "assign"]
