"""Kaggle: the API client, finding and downloading a competition's data, kernels, submissions."""
