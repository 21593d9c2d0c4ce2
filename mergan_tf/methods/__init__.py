"""Continual-learning methods, one module per family, and the registry of their names.

`base` (the hook contract, SFT), `joint` (JT), `ewc` (EWC), `replay` (MeRGAN RA and JTR),
`dgr` (deep generative replay). `METHOD_CLASSES` maps every method name to its class;
`configs.METHODS` spells the same names for the command line without importing this
package (tests/test_methods.py checks that the two agree).
"""

from mergan_tf.configs import MethodConfig
from mergan_tf.methods.base import Method, ReplayBatch, TrainingRun
from mergan_tf.methods.dgr import DeepGenerativeReplay
from mergan_tf.methods.ewc import ElasticWeightConsolidation
from mergan_tf.methods.joint import JointTraining
from mergan_tf.methods.replay import JointTrainingWithReplay, ReplayAlignment

METHOD_CLASSES = {cls.name: cls for cls in (Method, JointTraining, ElasticWeightConsolidation,
                                             ReplayAlignment, JointTrainingWithReplay,
                                             DeepGenerativeReplay)}

__all__ = ["METHOD_CLASSES", "DeepGenerativeReplay", "ElasticWeightConsolidation",
           "JointTraining", "JointTrainingWithReplay", "Method", "ReplayAlignment",
           "ReplayBatch", "TrainingRun", "make_method"]


def make_method(config: MethodConfig) -> Method:
    """The method object for `config.name`."""
    if config.name not in METHOD_CLASSES:
        raise ValueError(f"unknown method {config.name!r}; choose one of {sorted(METHOD_CLASSES)}")
    return METHOD_CLASSES[config.name](config)
