"""The tensor tutorial (PyTorch's "Tensors" page and the blitz's first part): creation,
attributes, indexing, joining, arithmetic, in-place ops and the NumPy bridge.  Every
printed number is deterministic (the random tensors show only their shape)."""
import numpy as np
import torch

# --- creating tensors
data = [[1, 2], [3, 4]]
x_data = torch.tensor(data)
np_array = np.array(data)
x_np = torch.from_numpy(np_array)
print(f"From data: \n {x_data} \n")
print(f"From NumPy: \n {x_np} \n")

x_ones = torch.ones_like(x_data)
print(f"Ones Tensor: \n {x_ones} \n")
x_rand = torch.rand_like(x_data, dtype=torch.float)
print(f"Random Tensor shape: {tuple(x_rand.shape)}, dtype {x_rand.dtype} \n")

shape = (2, 3,)
rand_tensor = torch.rand(shape)
ones_tensor = torch.ones(shape)
zeros_tensor = torch.zeros(shape)
print(f"Random shape: {tuple(rand_tensor.shape)}")
print(f"Ones Tensor: \n {ones_tensor} \n")
print(f"Zeros Tensor: \n {zeros_tensor}")
x = torch.empty(5, 3)
print(x.size(), x.size() == torch.Size([5, 3]))
print(torch.zeros(5, 3, dtype=torch.long))
print(torch.arange(6).view(2, 3), torch.arange(6).view(-1, 2).shape)

# --- attributes
tensor = torch.rand(3, 4)
print(f"Shape of tensor: {tensor.shape}")
print(f"Datatype of tensor: {tensor.dtype}")
print(f"Device tensor is stored on: {tensor.device}")
if torch.cuda.is_available():
    tensor = tensor.to("cuda")

# --- indexing and slicing
tensor = torch.ones(4, 4)
print(f"First row: {tensor[0]}")
print(f"First column: {tensor[:, 0]}")
print(f"Last column: {tensor[..., -1]}")
tensor[:, 1] = 0
print(tensor)

# --- joining
t1 = torch.cat([tensor, tensor, tensor], dim=1)
print(t1)
print(torch.stack([tensor[0], tensor[1]]).shape)

# --- arithmetic
y1 = tensor @ tensor.T
y2 = tensor.matmul(tensor.T)
y3 = torch.rand_like(y1)
torch.matmul(tensor, tensor.T, out=y3)
print(y1, torch.equal(y1, y2), torch.equal(y1, y3))
z1 = tensor * tensor
z2 = tensor.mul(tensor)
z3 = torch.rand_like(tensor)
torch.mul(tensor, tensor, out=z3)
print(z1, torch.equal(z1, z2), torch.equal(z1, z3))

agg = tensor.sum()
agg_item = agg.item()
print(agg_item, type(agg_item))

# --- in-place
print(f"{tensor} \n")
tensor.add_(5)
print(tensor)
y = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
y.t_()
y.copy_(y * 2)
print(y)

# --- the NumPy bridge
t = torch.ones(5)
print(f"t: {t}")
n = t.numpy()
print(f"n: {n}")
t.add_(1)
print(f"t: {t}")
print(f"n: {n}")
n = np.ones(5)
t = torch.from_numpy(n)
np.add(n, 1, out=n)
print(f"t: {t}")
print(f"n: {n}")
print("tensor tutorial: done")
