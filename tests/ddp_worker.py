"""Run by torchrun in tests/test_train.py: a few DDP steps, then each rank writes its weights digest."""

import json
import os
import sys

import torch.distributed as dist

from zippypoint.train.config import TrainConfig
from zippypoint.train.trainer import train

data, out, cfg_json = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = TrainConfig.from_dict(json.loads(cfg_json))
result = train(cfg, data, out, progress=False, device="cpu")
rank = int(os.environ["RANK"])
with open(os.path.join(out, f"digest_rank{rank}.txt"), "w") as f:
    f.write(result["weights_digest"])
dist.destroy_process_group()
