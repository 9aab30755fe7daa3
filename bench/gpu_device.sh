#!/usr/bin/env bash
# The GPU session's one device run (issue 17), from the repo root on the device machine, with the pinned wheels
# carried in .whl/ (bench/README.md, "GPU": how to download them and the `run` call). Three parts, each under its own
# time limit so that one overrunning cannot take the others' time, and the whole stays under the run tool's 10 minutes:
#   1. the test suite without the slow tests, on CUDA (model.device=auto picks it): $OUT/pytest.log, $OUT/junit.xml
#   2. bench/gpu.py's DPO section on the Llama-3.2-1B shape: $OUT/gpu-dpo.json (written after each arm), gpu-dpo.log
#   3. its generation section: $OUT/gpu-gen.json, $OUT/gpu-gen.log (the logs hold stderr too)
#   4. `mipo run --config recipes/demo.yaml` on that random model, the user's path end to end with the CUDA defaults
#      (the issue's before: 65 s): $OUT/demo.log, ending with the stage timings
# $OUT/versions.txt: what the image had and what the wheels replaced. Elsewhere OUT defaults to /tmp/gpu-device.
# Env: SUITE_S (default 160), DPO_S (170), GEN_S (135), DEMO_S (90), PYTEST_WORKERS (4; 0 = one process), SHAPE (1b).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-device}
mkdir -p "$OUT"
SUITE_S=${SUITE_S:-160} DPO_S=${DPO_S:-170} GEN_S=${GEN_S:-135} DEMO_S=${DEMO_S:-90} PYTEST_WORKERS=${PYTEST_WORKERS:-4} SHAPE=${SHAPE:-1b}

# transformers/trl/peft/datasets/gguf/sacrebleu as mipo pins them, and what the image lacks (bench/README.md)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1  # mipo itself from the source tree: nothing to build

python3 - <<'EOF' 2>&1 | tee "$OUT/versions.txt"
import importlib.metadata as md
import torch
for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "huggingface-hub", "tokenizers",
             "pyarrow", "fsspec", "pandas", "numpy", "safetensors", "openai", "pytest", "pytest-timeout",
             "pytest-xdist"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} MISSING")
print("cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())
import mipo.train, trl, datasets  # noqa: E401 - fails here, with the cause, if a carried wheel's needs are unmet
print("imports ok")
EOF

# 1. The suite on CUDA. --session-timeout (pytest-timeout >= 2.3) stops it in time to write junit.xml; `timeout`
# is the backstop. Workers: the suite takes longer than the time box in one process; loadfile keeps a file's tests
# (and their servers, ports, mounts) in one worker.
args=(-m "not slow" -q -rfE -p no:cacheprovider --junitxml "$OUT/junit.xml") threads=()
python3 -m pytest --help 2>/dev/null | grep -q -- --session-timeout \
    && args+=(--timeout 120 --session-timeout $((SUITE_S - 20)))
if [ "$PYTEST_WORKERS" -gt 0 ] && python3 -c "import xdist" 2>/dev/null; then
    args+=(-n "$PYTEST_WORKERS" --dist loadfile)
    threads=(OMP_NUM_THREADS=$((16 / PYTEST_WORKERS)))  # 16 cores shared by the workers
fi
echo "== pytest ${args[*]}"
env "${threads[@]}" timeout -k 10 "$SUITE_S" python3 -m pytest "${args[@]}" > "$OUT/pytest.log" 2>&1
echo "pytest exit $? (124: stopped by timeout)"
grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/pytest.log" | tail -60

# 2, 3. The bench, a section at a time: progress lines and the table here; TRL's per-step log dicts and warnings
# only in the logs.
for section in dpo generation; do
    name=${section:0:3} limit=$([ "$section" = dpo ] && echo "$DPO_S" || echo "$GEN_S")
    echo "== bench/gpu.py --shape $SHAPE --sections $section"
    timeout -k 10 "$limit" python3 bench/gpu.py --shape "$SHAPE" --sections "$section" --out "$OUT/gpu-$name.json" \
        --keep-model "/tmp/model-$SHAPE-$name" 2>&1 | tee "$OUT/gpu-$name.log" | grep -v -E "^\{'|Warning|warn\("
    echo "bench $section exit ${PIPESTATUS[0]} (124: stopped by timeout; gpu-$name.json keeps the parts that finished)"
done

# 4. The demo recipe on the random model the generation section kept (its end token never comes, so every response
# runs its full 64 tokens; the byte tokenizer decodes ids past 258 to nothing, so the texts are short or empty: a run
# of the user's path and its time, not a result).
echo "== mipo run --config recipes/demo.yaml --model.name /tmp/model-$SHAPE-gen"
start=$SECONDS
timeout -k 10 "$DEMO_S" python3 -m mipo run --config recipes/demo.yaml --model.name "/tmp/model-$SHAPE-gen" \
    --run-dir /tmp/demo-run > "$OUT/demo.log" 2>&1
rc=$?
{ echo "exit $rc after $((SECONDS - start)) s; stage seconds:"; cat /tmp/demo-run/timings.json; } 2>&1 | tee -a "$OUT/demo.log"
