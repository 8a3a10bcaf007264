"""Fast recurrent layers for Keras 3 on the CPU: SimpleRNN, LSTM and GRU with each layer's time
loop, forward and backward, in one C++ TensorFlow op.

    from fast_rnn.layers import LSTM      # a drop-in for keras.layers.LSTM

``python -m fast_rnn.build`` compiles the kernels ahead of time (README.md has the rest). The
package imports nothing at import time, so that the build command can run before TensorFlow.
"""
