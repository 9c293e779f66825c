"""Export a ZippyPoint model for deployment; the same as ``zippypoint export``.

    python export/export_model.py --format onnx-int8 --model zippypoint --out zippypoint-int8.onnx
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from zippypoint.commands.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
