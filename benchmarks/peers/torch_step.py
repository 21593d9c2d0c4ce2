"""The peer a user would pick instead: the same outer iteration written plainly in PyTorch.

  pip install torch==2.13.0        # not a dependency of mergan_tf; CPU build
  python benchmarks/peers/torch_step.py --iters 20 --warmup 3

The release's 32x32 conditional WGAN-GP AC-GAN (gan32, DIM 32, one channel) and one outer
iteration of SFT: one generator update, then five critic updates, batch 64, Adam(1e-4,
0, 0.9), gradient penalty 10 (a double backward), AC cross-entropy on real and fake, on
random data in [-1, 1]; eager float32 (`torch.compile` cannot compile the double backward).
The same shapes and arithmetic as `plain_step.py` and the trainer's SFT step, so the three
compare; the padding of PyTorch's symmetric "same" differs by one pixel of alignment from
TensorFlow's, which changes no shape or FLOP count. The last line is `ms_per_iter=<median>`.
"""

import argparse
import statistics
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:  # pragma: no cover - the benchmark needs torch, the package does not
    raise SystemExit("benchmarks/peers/torch_step.py needs PyTorch: pip install torch==2.13.0 "
                     f"(CPU build; not a dependency of mergan_tf) ({e})")

Z, CLASSES, DIM, BATCH, CRITIC_ITERS = 128, 10, 32, 64, 5


class ConditionalBatchNorm(nn.Module):
    """Batch statistics always (the release), a per-class scale and offset."""

    def __init__(self, channels):
        super().__init__()
        self.gamma = nn.Embedding(CLASSES, channels)
        self.beta = nn.Embedding(CLASSES, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x, labels):
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
        x = (x - mean) * torch.rsqrt(var + 1e-5)
        return x * self.gamma(labels)[:, :, None, None] + self.beta(labels)[:, :, None, None]


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(Z, 4 * 4 * 4 * DIM)
        widths = [4 * DIM, 2 * DIM, DIM, 1]
        self.bns = nn.ModuleList(ConditionalBatchNorm(w) for w in widths[:3])
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(widths[i], widths[i + 1], 5, stride=2, padding=2, output_padding=1)
            for i in range(3))

    def forward(self, z, labels):
        x = self.fc(z).view(-1, 4 * DIM, 4, 4)
        for bn, deconv in zip(self.bns, self.deconvs):
            x = deconv(F.relu(bn(x, labels)))
        return torch.tanh(x)


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        widths = [1, DIM, 2 * DIM, 4 * DIM]
        self.convs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 5, stride=2, padding=2)
                                   for i in range(3))
        self.wgan = nn.Linear(4 * 4 * 4 * DIM, 1)
        self.ac = nn.Linear(4 * 4 * 4 * DIM, CLASSES)

    def forward(self, x):
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        x = x.flatten(1)
        return self.wgan(x).squeeze(1), self.ac(x)


def outer_iteration(g, d, g_opt, d_opt, reals, real_labels):
    """One generator update, then CRITIC_ITERS critic updates (WGAN-GP + AC)."""
    labels = torch.full((BATCH,), 3, dtype=torch.long)
    g_opt.zero_grad(set_to_none=True)
    fake_logits, fake_class = d(g(torch.randn(BATCH, Z), labels))
    (-fake_logits.mean() + F.cross_entropy(fake_class, labels)).backward()
    g_opt.step()
    for k in range(CRITIC_ITERS):
        real = reals[k]
        with torch.no_grad():
            fake = g(torch.randn(BATCH, Z), labels)
        alpha = torch.rand(BATCH, 1, 1, 1)
        mixed = (real + alpha * (fake - real)).requires_grad_(True)
        d_opt.zero_grad(set_to_none=True)
        logits, class_logits = d(torch.cat([real, fake]))
        real_logits, fake_logits = logits[:BATCH], logits[BATCH:]
        grad, = torch.autograd.grad(d(mixed)[0].sum(), mixed, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss = (fake_logits.mean() - real_logits.mean() + 10 * gp
                + F.cross_entropy(class_logits[:BATCH], real_labels[k]))
        loss.backward()
        d_opt.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20, help="timed outer iterations")
    parser.add_argument("--warmup", type=int, default=3, help="untimed outer iterations first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g, d = Generator(), Critic()
    g_opt = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
    d_opt = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9))
    reals = torch.rand(CRITIC_ITERS, BATCH, 1, 32, 32) * 2 - 1
    real_labels = torch.randint(0, CLASSES, (CRITIC_ITERS, BATCH))
    times = []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        outer_iteration(g, d, g_opt, d_opt, reals, real_labels)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, eager float32")
    print(f"ms_per_iter={1000 * statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
