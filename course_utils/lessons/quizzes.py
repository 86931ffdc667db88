"""The self-check quizzes at the end of notebooks 01-10: three multiple-choice questions each.

Every question has its choices, the index of the right one, a one-sentence reason for every wrong choice and a
confirmation for the right one. :func:`check` is the pure function that answers a click; the widget in
:mod:`course_utils.widgets.quiz` only shows what it returns. :func:`static_text` is the plain-text version
(questions and choices, no answers) for a run that cannot show widgets.
"""
from __future__ import annotations

from dataclasses import dataclass

from course_utils.errors import CourseError

WRONG = "Not quite"
RIGHT = "Right"


@dataclass(frozen=True)
class Question:
    """One multiple-choice question. ``reasons[i]`` says why choice ``i`` is wrong (``None`` for the answer)."""
    prompt: str
    choices: tuple[str, ...]
    answer: int
    reasons: tuple[str | None, ...]
    confirm: str


def _q(prompt: str, right: str, confirm: str, *wrong: tuple[str, str], at: int = 0) -> Question:
    """A question whose right choice sits at position ``at`` among the wrong ones (choice, reason)."""
    choices = [w[0] for w in wrong]
    reasons: list[str | None] = [w[1] for w in wrong]
    choices.insert(at, right)
    reasons.insert(at, None)
    return Question(prompt, tuple(choices), at, tuple(reasons), confirm)


QUIZZES: dict[str, tuple[Question, ...]] = {
    "01": (
        _q("Training picks a random step t and builds x_t in one go. Why may it skip the t small noising steps?",
           "Gaussian noise composes: x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε has the same distribution as t small steps.",
           "Each step scales the image and adds Gaussian noise, and sums of Gaussians are Gaussian, so one draw "
           "with ᾱ_t, the product of (1 − β_s), gives the same x_t.",
           ("Because β is the same at every step.",
            "β rises linearly from step to step; the jump works for any schedule because ᾱ_t multiplies "
            "all the (1 − β_s) together."),
            ("Because the network only ever trains on the last step.",
             "every image gets its own random t in every batch, from the first step to the last."),
           at=1),
        _q("What does the baseline U-Net learn to output during training?",
           "The noise ε that was mixed into x_t.",
           "The loss is the mean squared error between the noise ε that was added and the network's guess of it.",
           ("The clean image x₀.",
            "the baseline predicts the noise; predicting something else (v) comes only in notebook 09."),
           ("The step t.",
            "t is an input of the network (as t/T, through a small MLP), not what it predicts."),
           at=0),
        _q("With the original course's schedule, what is x_t at the last training step?",
           "Still a faint image plus noise: the signal scale √ᾱ is almost one half there.",
           "The printed signal scale at the last step is nearly 0.5, so training never shows the network the "
           "pure noise that sampling starts from.",
           ("Pure Gaussian noise, exactly what sampling starts from.",
            "the notebook prints a signal scale of almost one half at the last step, so the image is still there."),
           ("An all-black image.",
            "the forward process adds noise and shrinks the image towards zero; it never turns it black."),
           at=2),
    ),
    "02": (
        _q("Where do the baseline's checkerboard artifacts come from?",
           "The decoder's transposed convolutions: kernel size 3 is not divisible by stride 2, so the stamps "
           "overlap unevenly.",
           "Some output pixels receive more kernel stamps than their neighbours, which prints a grid even on a "
           "flat input.",
           ("The max pooling in the encoder.",
            "MaxPool produces no periodic pattern; the upsample rung keeps MaxPool and still removes the grid."),
           ("Too few training steps.",
            "an undertrained model samples noise, but the grid is a fixed pattern of the upsampler: even a layer "
            "with all weights 1 prints it on a flat input."),
           at=0),
        _q("Which transposed convolution covers the interior of its output evenly?",
           "ConvTranspose2d(k=4, s=2)",
           "4 is divisible by 2, so every interior pixel receives the same number of stamps.",
           ("ConvTranspose2d(k=3, s=2)",
            "3 is not divisible by 2: this is the baseline's layer, whose interior counts alternate."),
           ("ConvTranspose2d(k=5, s=2)",
            "5 is not divisible by 2, so neighbouring pixels receive different numbers of stamps."),
           ("ConvTranspose2d(k=1, s=2)",
            "a kernel smaller than the stride leaves gaps: some pixels receive no stamp at all."),
           at=1),
        _q("Under the ci budget both models' checkerboard scores are many times the real images'. What does that say "
           "about the upsamplers?",
           "Almost nothing: a barely trained model samples something close to noise, and noise scores high too.",
           "The score of an unfinished model measures \"not finished\"; compare upsamplers under quick or with the "
           "shipped checkpoints.",
           ("The k=2, s=2 fix does not work.",
            "after a handful of steps both models still sample noise, so neither score can judge the upsampler."),
           ("Real images must contain a strong checkerboard.",
            "real clothes score far below even a faint added checkerboard; the samples are what score high."),
           at=2),
    ),
    "03": (
        _q("What does nn.GroupNorm(32, 64) do?",
           "It splits the 64 channels into 32 groups of 2 consecutive channels and normalizes each group per image.",
           "The first argument counts groups, so 64 channels in 32 groups gives 2 channels per group.",
           ("It makes 2 groups of 32 channels.",
            "the first argument is the number of groups, not the number of channels per group."),
           ("It normalizes each channel over the whole batch.",
            "that is BatchNorm in train mode; GroupNorm takes its statistics inside each image."),
           at=1),
        _q("One T-shirt is normalized alone, among sandals and among pullovers. Which layer gives it the same output "
           "in all three batches, in train mode and in eval mode?",
           "GroupNorm",
           "GroupNorm computes its statistics inside each image, the same way in both modes, so the batch never "
           "matters.",
           ("BatchNorm2d",
            "in train mode it normalizes with the statistics of the whole batch, so the batchmates change the "
            "T-shirt's output."),
           ("Both: any normalization ignores the other images.",
            "BatchNorm in train mode uses every image of the batch; only GroupNorm ignores them in both modes."),
           at=0),
        _q("Why does cu.build(\"groupnorm\", groups=48) fail?",
           "48 does not divide the layer's 64 channels, and the group count must divide the channel count.",
           "Every group must hold the same whole number of channels, so only divisors of the channel count work.",
           ("A group must hold at least two channels.",
            "GroupNorm(C, C), one channel per group, is allowed: the rule is divisibility."),
           ("The group count must be a power of two.",
            "any divisor of the channel count works, for example 3 groups of a 6-channel layer."),
           at=2),
    ),
    "04": (
        _q("Where is GELU's derivative negative?",
           "Everywhere to the left of the single point where it is zero, which is GELU's minimum.",
           "GELU dips below zero and comes back up, so left of its minimum its slope is negative, and it fades "
           "towards zero far out.",
           ("Nowhere: GELU rises everywhere, like ReLU.",
            "GELU is negative for negative x and has a minimum, so its slope is negative left of that minimum."),
           ("For every x below 0.",
            "between its minimum and 0 the slope is still positive; at x = 0 it is one half."),
           at=2),
        _q("Which claim about the gradients of ReLU and GELU holds up?",
           "ReLU's derivative jumps from 0 to 1 at zero; GELU's derivative is smooth.",
           "That is what the explorer's right panel shows.",
           ("GELU cannot stall: its gradient is large for every negative input.",
            "far to the left GELU's gradient is nearly zero, so such a unit learns almost as little as a dead ReLU."),
           ("GELU adds random noise, which suits a diffusion model.",
            "GELU is a deterministic function; the link to probability is an analogy, not a measurement."),
           at=1),
        _q("Swapping ReLU for GELU in the U-Net barely changes the time of a training step. Why?",
           "The convolutions do most of the work; the activations are a small part of it.",
           "GELU costs more than ReLU per element, but a U-Net step spends its time in the convolutions.",
           ("GELU has fewer parameters than ReLU.",
            "neither has parameters: the gelu rung has exactly the groupnorm rung's parameter count."),
           ("GELU is computed with a comparison, just like ReLU.",
            "GELU needs an erf (or a tanh) per element, where ReLU needs a comparison."),
           at=0),
    ),
    "05": (
        _q("What does the rearrange b c (h p1) (w p2) -> b (c p1 p2) h w do with p1 = p2 = 2?",
           "It moves the four pixels of each 2×2 patch into four channels: a bijection, the same as "
           "nn.PixelUnshuffle(2).",
           "Every value appears exactly once in the output, and nn.PixelShuffle(2) gives the input back bit for "
           "bit.",
           ("It keeps the largest value of each 2×2 window.",
            "that is MaxPool2d(2); the rearrange keeps all four values."),
           ("It averages each 2×2 patch.",
            "it moves numbers without combining them, so nothing is averaged and nothing is lost."),
           at=0),
        _q("Is the whole pooling block (the rearrange, then a 3×3 convolution from 4C to C channels) invertible?",
           "No: the convolution maps 4C channels to C, four times fewer numbers, so different inputs can give the "
           "same output.",
           "A linear map into a smaller space has a null space; adding a direction from it to the input does not "
           "change the block's output.",
           ("Yes, because the rearrange is a bijection.",
            "the rearrange is, but the 4C → C convolution after it compresses and cannot be undone."),
           ("Yes, because the convolution's weights are learned.",
            "learned or not, a linear map from 4C channels to C channels has a null space."),
           at=2),
        _q("In training, which inputs of a MaxPool2d(2) window receive a gradient?",
           "Only the largest value of each window.",
           "The other three values are dropped, so the loss's gradient never reaches them.",
           ("All four, a quarter each.",
            "that would be average pooling; MaxPool sends the whole gradient to the survivor."),
           ("None: pooling has no parameters, so no gradient passes through it.",
            "having no parameters does not stop gradients: MaxPool passes them on to the value it kept."),
           at=1),
    ),
    "06": (
        _q("How many learnable parameters does the sinusoidal embedding have?",
           "None: it is a fixed function of t/T; the MLP after it learns.",
           "The sines and cosines have fixed frequencies; only the time MLP that follows has weights.",
           ("One per frequency, learned in training.",
            "the frequencies are fixed by a formula and never change during training."),
           ("One learned vector per step, looked up by t.",
            "that would be a learned table like nn.Embedding; the sinusoid is computed, not looked up."),
           at=2),
        _q("The U-Net feeds the embedding t/T, not the integer t. What do the features look like over the whole "
           "schedule?",
           "A short, smooth arc, close to a straight line in t: the fastest frequency turns less than one radian.",
           "Neighbouring steps stay close and farther steps are always farther apart.",
           ("Many full turns, so steps far apart in time come back close together.",
            "that happens when the integer t is fed in; with t/T the features do not even complete a period."),
           ("Random-looking values, because sine and cosine are periodic.",
            "the features are smooth in t; with t/T they cover only a small part of one period."),
           at=0),
        _q("Why would a straight line in t tell the time MLP nothing that t/T does not?",
           "The MLP's first layer is affine, so it can compute any a + b·t from t/T itself.",
           "What the embedding adds is only the gentle curvature of sine and cosine over less than one radian.",
           ("Because the time MLP has no bias.",
            "its Linear layers do have biases; the point is that an affine layer can make any straight line in t."),
           ("Because the embedding has no parameters.",
            "that is true, but it is not the reason: the first layer of the MLP is affine."),
           at=1),
    ),
    "07": (
        _q("In the residual first block, x1 = conv1(x) and out = x1 + conv2(x1). What is the loss gradient "
           "arriving at x1?",
           "∂L/∂out, passed on unchanged by the shortcut, plus what flows back through conv2.",
           "∂out/∂x1 is the identity plus conv2's Jacobian, so the upstream gradient passes the shortcut untouched.",
           ("∂L/∂out · (1 + ∂L/∂x2), as the source notes write.",
            "inside the bracket belongs conv2's Jacobian, not a gradient of the loss, and the 1 is an identity "
            "matrix."),
           ("Only what flows back through conv2.",
            "the shortcut also passes ∂L/∂out straight to x1."),
           at=0),
        _q("What does the extra skip do?",
           "It concatenates the first block's output with the last up block's output, just before the output head.",
           "The head's first convolution then takes twice the first block's channels.",
           ("It adds the input image to the network's output.",
            "it joins feature maps by concatenation, and it feeds the output head, not the output."),
           ("It adds the first block's output to the bottleneck.",
            "it goes to the output head at full resolution, and it concatenates instead of adding."),
           at=2),
        _q("At initialization, the residual model's first block (down0) gets a larger gradient norm. Mainly why?",
           "The block has a second convolution, conv2, which receives a large gradient of its own.",
           "The convolution that sees the image gets about the same gradient with and without the residual block.",
           ("The shortcut rescues a vanishing gradient.",
            "in this shallow network the first convolution gets about the same gradient either way: nothing "
            "vanishes."),
           ("The residual block has fewer parameters.",
            "it has more: the second convolution is added, and its parameters count too."),
           at=1),
    ),
    "08": (
        _q("The optimized U-Net with exactly one idea reverted is a leave-one-out variant. What does it tell you?",
           "Whether the final model needs that idea: if removing it hurts, the idea matters in the final model.",
           "The ladder asks the other question, whether an idea helps on top of the ones before it; the two can "
           "disagree.",
           ("Whether the idea helps on top of the ideas added before it.",
            "that is the ladder's question; leave-one-out starts from the full model."),
           ("How much the idea costs in FLOPs.",
            "leave-one-out compares quality; the cost per step is measured separately."),
           at=0),
        _q("Why compare the presets at equal training compute as well as at equal steps?",
           "Their steps cost very different amounts of compute, and equal compute shows what an idea is worth on a "
           "given machine.",
           "At equal compute a cheaper network gets more steps; equal steps shows what the idea does to the "
           "network.",
           ("Because FID can only be measured at equal compute.",
            "FID is measured along every run, at equal steps too."),
           ("Because every preset costs the same per step.",
            "they do not: the optimized U-Net costs many times the baseline per step, which is why both views are "
            "needed."),
           at=2),
        _q("When does the course count a change of FID as real?",
           "When it is larger than two seed-to-seed spreads of a single run.",
           "A smaller change is reported as within noise: another seed could give it the other sign.",
           ("Whenever FID goes down.",
            "two runs that differ only in their seed already give different FIDs."),
           ("When FID falls below the real-vs-real floor.",
            "the floor is what two real sets score; no model is expected to go below it."),
           at=1),
    ),
    "09": (
        _q("Why is the original schedule's last step not pure noise?",
           "β rises only to 0.02 over 150 steps, so ᾱ at the last step stays far from zero and x_T still holds "
           "a faint image.",
           "Ho et al. chose that β range for 1000 steps; with 150 the image is never fully buried.",
           ("Because β is clipped at 0.999.",
            "that clipping belongs to the cosine schedule; the original is linear and never comes near it."),
           ("Because sampling adds the image back at the first step.",
            "sampling starts from pure noise; the gap is in training, whose x_T still holds the image."),
           at=2),
        _q("Why does the zero-terminal-SNR schedule train with v-prediction instead of ε?",
           "At SNR = 0, ᾱ_T = 0, and the clean-image estimate from ε divides by √ᾱ_T, so ε says nothing about "
           "the image there.",
           "v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀ still determines x₀ when ᾱ_t = 0.",
           ("Because v is cheaper to compute than ε.",
            "both are one output of the same network at the same cost; the reason is the division by √ᾱ_T."),
           ("Because ε-prediction never works with a schedule that ends near noise.",
            "linear_scaled ends near noise and trains well with ε; the problem is an SNR of exactly zero."),
           at=1),
        _q("What does η change in DDIM?",
           "How much fresh noise each step adds: η = 0 is deterministic, η = 1 adds as much as DDPM's posterior.",
           "The number of steps K is a separate choice, and neither needs any retraining.",
           ("The number of sampling steps K.",
            "K is chosen separately; η only sets the noise added per step."),
           ("Which network is used: η = 0 needs a network trained for DDIM.",
            "DDIM samples the same trained ε-network; nothing is retrained."),
           at=0),
    ),
    "10": (
        _q("Where does the unconditional prediction that guidance needs come from?",
           "The same network, asked with the label masked to the zero vector.",
           "Context dropout trains it without the label on a fraction of the images, so one network gives both "
           "predictions.",
           ("A second network, trained without labels.",
            "classifier-free guidance uses one network; the mask gives the unconditional prediction."),
           ("A classifier that scores the samples during sampling.",
            "that would be classifier guidance; the classifier in this notebook only measures the results."),
           at=0),
        _q("Guidance uses e = (1 + w)·e_c − w·e_u. What does w = 0 give?",
           "The plain conditional prediction e_c.",
           "With w = 0 the unconditional term drops out; larger w moves further in the direction the label adds.",
           ("The unconditional prediction e_u.",
            "with w = 0 the term with e_u vanishes, so only e_c is left."),
           ("The average of e_c and e_u.",
            "the formula gives e_c + w·(e_c − e_u); with w = 0 that is e_c alone."),
           at=2),
        _q("What does a larger guidance weight w buy, and what does it cost?",
           "Samples that show their requested class more often, at the cost of diversity, so FID gets worse at "
           "large w.",
           "Each class's samples crowd around its most typical look: accuracy rises, the spread within a class "
           "falls.",
           ("A better FID at every w.",
            "FID is usually best at a small w and worse at large w, because the variety of real clothes is lost."),
           ("Faster sampling.",
            "with w ≠ 0 each step runs the network twice, with and without the label, so it is slower if "
            "anything."),
           at=1),
    ),
    "11": (
        _q("Two entries trained for the same 30 minutes. Why can a narrower network beat a wider one?",
           "Each of its steps is cheaper, so many more steps fit in the same time.",
           "On a fixed clock a change is worth what it buys per minute, not per step.",
           ("Narrow networks always give better samples.",
            "at equal steps the wide ones often do better; the clock is what changes the comparison."),
           ("The time limit stops wide networks before they start.",
            "the limit stops every entry at the same time; what differs is how many steps fit in it."),
           at=1),
        _q("Your entry scored 27.5 at n = 200 and best-cpu 29.0 at n = 1,000. What can you conclude?",
           "Nothing yet: FID depends on n, so both must be scored with the same n, sampler and seed.",
           "A smaller n inflates FID; the capstone scores both models under the same rules for this reason.",
           ("Your entry wins by 1.5.", "the two numbers were measured under different rules, so they do not compare."),
           ("best-cpu wins, because n = 1,000 is more reliable.",
            "a larger n is more reliable, but these two numbers still measure different things."),
           at=0),
        _q("Your entry beats best-cpu by 2 FID points once. What should you do before claiming a win?",
           "Score again with another sampling seed and train again with another seed; keep it only if it holds.",
           "One run and one FID are one draw: the study measured spreads of a few FID points between seeds.",
           ("Nothing: a lower FID is a win.", "a 2-point gap is within the spread the course measured between seeds."),
           ("Train it longer than 30 minutes to make sure.", "that changes the challenge instead of checking the result."),
           at=2),
    ),
}


def questions(notebook: str) -> tuple[Question, ...]:
    """The quiz of a notebook, by its number ("01" … "11")."""
    key = str(notebook).zfill(2)
    if key not in QUIZZES:
        raise CourseError(f"no quiz for notebook {notebook!r}; the quizzes are {', '.join(QUIZZES)}.")
    return QUIZZES[key]


def check(notebook: str, question: int, choice: int) -> tuple[bool, str]:
    """Answer one click: (True, the confirmation) for the right choice, (False, "Not quite: <reason>") otherwise."""
    qs = questions(notebook)
    if not 0 <= question < len(qs):
        raise CourseError(f"notebook {notebook} has questions 0 to {len(qs) - 1}, not {question!r}.")
    q = qs[question]
    if not 0 <= choice < len(q.choices):
        raise CourseError(f"question {question} has choices 0 to {len(q.choices) - 1}, not {choice!r}.")
    if choice == q.answer:
        return True, f"{RIGHT}! {q.confirm}"
    return False, f"{WRONG}: {q.reasons[choice]}"


def letter(i: int) -> str:
    return "ABCDEFGH"[i]


def static_text(notebook: str) -> str:
    """The quiz as plain text, questions and choices only (no answers): what a non-interactive run shows."""
    lines = [f"Self-check quiz, notebook {str(notebook).zfill(2)} (run the notebook in JupyterLab to answer)"]
    for i, q in enumerate(questions(notebook), 1):
        lines.append("")
        lines.append(f"{i}. {q.prompt}")
        lines += [f"   {letter(j)}) {c}" for j, c in enumerate(q.choices)]
    return "\n".join(lines)
