//! The usage texts of the program and its commands.

pub const MAIN_USAGE: &str = "\
simdnet: LeNet-5 on hand-written SIMD kernels, with PyTorch-exact CrossEntropyLoss and SGD

Usage: simdnet <command> [options]

Commands:
  train      train LeNet-5, keeping the best checkpoint by test accuracy
  eval       evaluate a checkpoint: test loss, accuracy and confusion matrix
  gradcheck  check the gradients of every layer and of LeNet-5 (f64, and f32 on the SIMD path)
  explain    the tutorial's worked example (softmax, loss, gradient, SGD-momentum), step by step
  info       the CPU features found and the kernel ISA in use
  bench      this CPU's FMA peak and what each kernel, training and evaluation get of it

Run `simdnet <command> --help` (or `simdnet help <command>`) for a command's options.

Data (train, eval): --data DIR, else $SIMDNET_DATA, else /usr/share/datasets/fashion-mnist
(Debian's dataset-fashion-mnist), else a Fashion-MNIST subset built into the program (5,000
training, 1,000 test images), which `--data builtin` picks whatever else is installed.

Environment:
  SIMDNET_ISA=scalar|avx2|avx512|neon  use that kernel ISA (an error if this CPU lacks it)
  SIMDNET_DATA=DIR                     the data directory when --data is not given

Exit status: 0 success; 1 error (unreadable files or data, a diverged run, a failed check);
2 invalid command line or refused files (an output that is an input, a path that is not a
regular file, an existing --out that is not a checkpoint); 130 stopped by SIGINT (Ctrl-C),
143 by SIGTERM, 141 by a closed output pipe (train saves its state first).
";

pub const TRAIN_USAGE: &str = "\
Usage: simdnet train [options]

Trains LeNet-5 with minibatch SGD (momentum) and cross-entropy, data-parallel across threads.
After each epoch it evaluates on the test set and writes the model to --out when the test
accuracy is strictly higher than the best so far (an existing --out checkpoint counts as the
best so far). Outputs are checked before training starts (none may be an input or a
non-regular file) and written atomically; Ctrl-C stops at the next step and saves the state.

Options:
  --data DIR           directory with the four IDX files, raw or .gz (train-images-idx3-ubyte,
                       train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte),
                       torchvision's root (DIR/FashionMNIST/raw or DIR/MNIST/raw), or `builtin`:
                       the Fashion-MNIST subset built into the program (5,000 training and
                       1,000 test images)
  --epochs N           passes over the training set [default: 10]
  --batch-size N       samples per optimizer step [default: 64]
  --lr F               learning rate [default: 0.01]
  --momentum F         SGD momentum [default: 0.9]
  --dampening F        SGD dampening [default: 0]
  --weight-decay F     L2 penalty added to the gradient [default: 0]
  --nesterov           Nesterov momentum (needs momentum > 0 and dampening 0)
  --threads N          worker threads [default: the number of cores]
  --seed N             seed of the initialisation and the shuffling [default: 0]
  --out FILE           the best checkpoint (safetensors) [default: lenet5-best.safetensors]
  --init FILE          start from this checkpoint (e.g. saved from PyTorch) instead of a fresh init
  --no-shuffle         take the training set in file order
  --max-steps N        stop after N optimizer steps (then evaluate once, write --out if it is a
                       new best, and --save-last)
  --save-last FILE     also write the final weights here
  --metrics FILE       write a CSV: epoch,train_loss,test_loss,test_accuracy,train_seconds,
                       samples_per_sec,test_seconds (a row per epoch)
  --log-interval N     print the training loss every N batches, batch 0 included [default: 100]
  --state FILE         write the run's state here after every epoch and when stopped (Ctrl-C,
                       SIGTERM, a closed pipe), so `--resume FILE` continues it bit-exactly
  --resume FILE        continue the run saved in FILE (and keep writing it); --epochs is the
                       total; only --epochs, --threads, --out, --save-last, --metrics,
                       --log-interval and --max-steps may differ from the original run (the
                       others default to the saved values)
  --overwrite          let this run's first model replace an existing --out checkpoint (by
                       default it is evaluated first and kept unless a model beats it)
  --plot FILE          draw the training curves (loss per log interval, test loss and accuracy
                       per epoch) into this SVG file after every epoch
  --quiet              print only the epoch and test lines (no batch lines, no progress line)
  -h, --help           this text

Values are given as `--flag value` or `--flag=value`.
";

pub const EVAL_USAGE: &str = "\
Usage: simdnet eval --weights FILE [--data DIR] [--plot FILE.svg] [--threads N]

Evaluates a LeNet-5 checkpoint (safetensors, PyTorch's state_dict names and shapes; F32, F64,
F16 or BF16) on the test set: average loss, accuracy, and the confusion matrix (rows: the true
class, columns: the predicted class).

Options:
  --weights FILE   the checkpoint to evaluate (required)
  --data DIR       directory with t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (raw or .gz),
                   torchvision's root (DIR/FashionMNIST/raw), or `builtin` (the built-in subset)
  --plot FILE      draw the confusion matrix as a heat map and the misclassified test images
                   (true and predicted labels) into this SVG file
  --threads N      threads to evaluate on [default: the number of cores]
  -h, --help       this text
";

pub const GRADCHECK_USAGE: &str = "\
Usage: simdnet gradcheck

Checks the gradients of every layer and of the whole LeNet-5 on a small batch against central
differences in f64, and the f32 SIMD path against the f64 one. Prints a table (layer, tensor,
max abs error, max rel error, pass); exits with status 1 if any check fails.
";

pub const EXPLAIN_USAGE: &str = "\
Usage: simdnet explain

The tutorial's worked example, computed by the library step by step: logits, softmax, loss, the
gradient softmax - onehot, then two SGD-momentum steps on a few parameters (showing how the
momentum buffer starts), each beside the textbook formula.
";

pub const INFO_USAGE: &str = "\
Usage: simdnet info

Prints the CPU features simdnet looks for, the kernel ISAs this CPU supports, the one in use
(SIMDNET_ISA overrides the choice), and where `simdnet train` would take its data from.
";

pub const BENCH_USAGE: &str = "\
Usage: simdnet bench [--isa NAME] [--threads N] [--json] [--quick]

Measures what this CPU gets, in under a minute: the FMA peak of each kernel ISA (one thread and
--threads threads), each kernel at LeNet-5's shapes at batch 64 and GEMM at 256, 512 and 1024,
every ISA side by side in GFLOP/s (with the fraction of the ISA's peak) or GB/s, then LeNet-5's
training steps and evaluation on synthetic data (samples/s) on 1 and --threads threads. Each
figure is the fastest sample within a fixed time budget; the scalar ISA skips GEMM 1024.

Options:
  --isa NAME     measure only this ISA: scalar, avx2, avx512 or neon [default: every ISA this
                 CPU supports, or SIMDNET_ISA when set]
  --threads N    threads of the multi-thread peak, training and evaluation [default: the number
                 of cores]
  --json         print one JSON object (machine, peaks, kernels, training and evaluation)
                 instead of the table
  --quick        tiny time budgets (a few seconds in all; rough figures, for smoke tests)
  -h, --help     this text
";

/// The usage text of `command` (`None`: the program's).
pub fn usage(command: Option<&str>) -> &'static str {
    match command {
        Some("train") => TRAIN_USAGE,
        Some("eval") => EVAL_USAGE,
        Some("gradcheck") => GRADCHECK_USAGE,
        Some("explain") => EXPLAIN_USAGE,
        Some("info") => INFO_USAGE,
        Some("bench") => BENCH_USAGE,
        _ => MAIN_USAGE,
    }
}
