"""Next-byte predictors. They know nothing about coding: `gencomp` turns them into
compressors with an arithmetic coder, and `samplers` sample from them directly."""
