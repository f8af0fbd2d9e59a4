"""minirnn: exact, readable and fast recurrent networks (Elman RNN, GRU, LSTM) for NumPy."""
