"""NLP model configuration and offline loading of the spaCy pipeline used for NER."""

from models.loader import ModelConfig, ModelNotInstalled, load_model_config, load_pipeline

__all__ = ["ModelConfig", "ModelNotInstalled", "load_model_config", "load_pipeline"]
