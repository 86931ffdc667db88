import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: on a small, shared CPU two threads can fight and run slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
