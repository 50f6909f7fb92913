//! safetensors checkpoints (placeholder)
