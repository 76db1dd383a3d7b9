"""GRU4RecPlus: GRU4Rec as in the original (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018).

Session-parallel mini-batches (docs/algorithm.md §1), scores over in-batch targets plus shared
supp^α negatives (§2), the ranking losses and log-Q (§3). Training steps come from
``SessionParallelDataLoader``; validation and test go through RecBole's full-sort evaluator,
which calls ``full_sort_predict`` on RecBole's item-list rows.
"""

from logging import getLogger

import numpy as np
import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from ..data.dataset import SessionParallelDataset
from ..errors import PluginError
from .. import options
from ..loss import LOSS_NAMES, build_loss, mixture_cross_entropy
from ..sampler import PopularitySampler
from .fused_step import FUSED_LOSSES, score_loss_function
from .layers import (
    GRULayer,
    MixtureHeads,
    OneHotGRULayer,
    gather_distinct_rows,
    init_uniform_,
    parse_final_activation,
)

def _final_activation(value):
    if value is None:
        return True
    try:
        parse_final_activation(value)
    except PluginError:
        return False
    return True


def resolved_final_act(config):
    """final_act as it runs: unset means the original's choice, linear scores for cross-entropy
    (its ELU belongs to BPR-max) and elu-0.5 for the ranking losses."""
    return config["final_act"] or ("linear" if str(config["loss"]).strip().lower() == "cross-entropy" else "elu-0.5")


# RecBole keys that GRU4RecPlus's trainer and model never read: left out of the logged configuration
NOT_READ = ("learner", "weight_decay", "train_neg_sample_args", "neg_sampling", "clip_grad_norm", "enable_amp",
            "enable_scaler", "require_pow")


class GRU4RecPlus(SequentialRecommender):
    """GRU4Rec with session-parallel training, sampled negatives and ranking losses."""

    input_type = InputType.POINTWISE
    session_parallel = True  # trained by SessionParallelTrainer, on the dataset and steps declared here
    DATASET = SessionParallelDataset
    TRAINING_UNIT = "session"  # each slot of a training step walks one session
    HIDDEN_DROPOUT_KEY = "dropout_p_hidden"
    STEP_BY_HAND = True  # the fused step runs the GRU stack by hand (_taped_train_step)

    OPTIONS = {  # checked with every run's options before any work (recbole_gru4rec_plus.options)
        "loss": options.choice(*LOSS_NAMES),
        "bpreg": options.number(low=0),
        "logq": options.number(low=0),
        "logq_tail": options.choice("original", "exact"),
        "final_act": options.Check(_final_activation, "linear, relu, tanh, leaky-<slope>, elu-<alpha> or ~", "elu-0.5"),
        "layers": options.positive_ints(),
        "embedding": options.integer(low=0, example=0),
        "constrained_embedding": options.boolean(),
        "dropout_p_embed": options.number(low=0, high=1, high_open=True, example=0.2),
        "dropout_p_hidden": options.number(low=0, high=1, high_open=True, example=0.2),
        "n_sample": options.integer(low=-1, example=2048),
        "head": options.choice("softmax", "mos"),
        "mos_heads": options.integer(low=1, example=4),
        "sample_alpha": options.number(low=0, high=1, example=0.5),
        "sample_cache_size": options.integer(low=1, example=1024),
        "momentum": options.number(low=0, high=1, high_open=True, example=0.1),
        "dwell_threshold": options.number(low=0, low_open=True, optional=True, example=60),
        "dwell_max_copies": options.integer(low=1, example=10),
        "fused_step": options.boolean(),
        "compile": options.boolean(),
    }

    @staticmethod
    def shown_options(options):
        """The logged configuration: what runs (optimizer, negatives, final activation resolved),
        without the RecBole keys this model never reads."""
        for key in NOT_READ:
            options.pop(key, None)
        n_sample = options["n_sample"]
        options["optimizer"] = (f"Adagrad with momentum {options['momentum']} on the rows each step touches "
                                f"(learning_rate {options['learning_rate']})")
        options["negatives"] = ("every item (full softmax)" if n_sample == -1 else "the other rows' targets" if not n_sample
                                else f"the other rows' targets + {n_sample} shared samples drawn ∝ "
                                     f"support^{options['sample_alpha']}")
        options["final_act"] = resolved_final_act(options)
        return options

    @staticmethod
    def check_options(config):
        """Rules between keys (each key's own type and range are in OPTIONS)."""
        rules = [
            (not (config["constrained_embedding"] and config["embedding"]),
             "constrained_embedding shares the output embedding as input embedding: set embedding: 0 with it"),
            (config["n_sample"] or config["train_batch_size"] >= 2,
             "n_sample: 0 leaves the other slots' targets as the only negatives: set train_batch_size >= 2"),
            (not config["logq"] or str(config["loss"]).strip().lower() == "cross-entropy",
             "logq (log-Q correction) applies to loss: cross-entropy only; set logq: 0 for other losses"),
            (not (config["logq"] and config["n_sample"] == -1),
             "logq corrects for sampled negatives, and n_sample: -1 (every item a negative) samples none: set logq: 0"),
            (config["head"] != "mos" or str(config["loss"]).strip().lower() == "cross-entropy",
             f"head: mos is a mixture of softmaxes, trained with loss: cross-entropy (not {config['loss']}): "
             f"set loss: cross-entropy, or head: softmax for the ranking losses"),
        ]
        for holds, message in rules:
            if not holds:
                raise PluginError(message)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.layer_sizes = [config["layers"]] if isinstance(config["layers"], int) else list(config["layers"])
        hidden_size = self.layer_sizes[-1]
        self.embedding_size = config["embedding"]
        self.constrained_embedding = bool(config["constrained_embedding"])
        self.n_slots = config["train_batch_size"]  # B: a step's loss is its rows' sum over B (docs/algorithm.md §1)
        self.logq = float(config["logq"] or 0.0)
        self.logq_tail_as_original = config["logq_tail"] == "original"
        self.loss_fct = build_loss(config["loss"], bpreg=config["bpreg"])
        self.final_act = resolved_final_act(config)
        self.final_activation = parse_final_activation(self.final_act)

        supports = np.bincount(dataset.inter_feat[self.ITEM_ID].numpy(), minlength=self.n_items)
        self.full_softmax = config["n_sample"] == -1  # every item a negative of every row (no sampling)
        self.register_buffer("_every_item", torch.arange(self.n_items), persistent=False)  # the full softmax's columns
        self.sampler = PopularitySampler(
            supports, config["sample_alpha"], max(config["n_sample"], 0), config["sample_cache_size"], seed=config["seed"],
            device=config["device"],
        )
        self._register_log_q(supports, float(config["sample_alpha"]))

        # output item vectors W and biases b: the score of item i is h · W[i] + b[i]. Two tables, as in
        # the original: with momentum, a row that only an input touched moves its W[i] but not its b[i].
        self.item_embedding = nn.Embedding(self.n_items, hidden_size)
        init_uniform_(self.item_embedding.weight, self.n_items, hidden_size)
        self.item_bias = nn.Embedding(self.n_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        if self.embedding_size:
            self.input_embedding = nn.Embedding(self.n_items, self.embedding_size)
            init_uniform_(self.input_embedding.weight, self.n_items, self.embedding_size)
        self.one_hot_layer = None
        input_size = self.embedding_size or hidden_size
        gru_sizes = self.layer_sizes
        if not (self.constrained_embedding or self.embedding_size):  # one-hot input: the original's own first layer
            self.one_hot_layer = OneHotGRULayer(self.n_items, self.layer_sizes[0])
            input_size, gru_sizes = self.layer_sizes[0], self.layer_sizes[1:]
        self.gru_layers = nn.ModuleList(GRULayer(size_in, size) for size_in, size in zip([input_size, *gru_sizes], gru_sizes))
        # the output head: one softmax, or a Mixture of Softmaxes (mos_heads: 1 is the plain head exactly)
        self.mixture = MixtureHeads(hidden_size, config["mos_heads"]) if config["head"] == "mos" and config["mos_heads"] > 1 else None
        self.embed_dropout = nn.Dropout(config["dropout_p_embed"])
        self.hidden_dropout = nn.Dropout(config[self.HIDDEN_DROPOUT_KEY])
        self._session_state = None
        # the fused step (train_step) where it applies: the plain head and GRU4Rec's two losses
        not_fused = self._why_not_fused(config)
        self.fused = not_fused is None
        self.fused_scores = score_loss_function(
            str(config["loss"]).strip().lower(), config["bpreg"], self.loss_fct.epsilon, self.final_act, self.n_slots,
            compile=bool(config["compile"]),
        ) if self.fused else None
        if config["compile"] and not self.fused:
            getLogger().warning(f"compile: True compiles the fused training step, which {type(self).__name__} does not "
                                f"take with {not_fused}: training without compiling")

    def _why_not_fused(self, config):
        """Why this model's steps cannot be fused (None if they can)."""
        if not config["fused_step"]:
            return "fused_step: False"
        if self.mixture is not None:
            return "head: mos"
        if str(config["loss"]).strip().lower() not in FUSED_LOSSES:
            return f"loss: {config['loss']} (it computes bpr-max and cross-entropy)"
        return None

    def _register_log_q(self, supports, alpha):
        """log-Q as in the original (docs/algorithm.md §3): a column drawn as another slot's target has
        Q = supp, a sampled one Q = supp^α. Every column's score is corrected by -logq·log supp,
        and a sampled occurrence then weighs supp^(logq·(1-α)) in the softmax: the same loss."""
        log_support = torch.log(torch.as_tensor(supports, dtype=torch.float64).clamp_min(1.0))
        dtype = torch.get_default_dtype()
        correction = (self.logq * log_support).to(dtype) if self.logq else None
        sample_weight = torch.exp(self.logq * (1 - alpha) * log_support).to(dtype) if self.logq and alpha != 1 else None
        self.register_buffer("log_q_correction", correction, persistent=False)
        self.register_buffer("sample_weight", sample_weight, persistent=False)

    # ---- one step of the GRU stack, shared by training and prediction ----

    def _input_embedding(self, items):
        table = self.item_embedding.weight if self.constrained_embedding else self.input_embedding.weight
        return F.embedding(items, table, sparse=self.embedding_size > 0)

    def _step(self, items, states, embedded=None, gate_input=None):
        """One step from the input ``items`` (or their looked-up input ``embedded`` rows): the new
        state of every layer, each after its dropout. As in the original, the dropped-out state is
        both the next layer's input and the state carried to the next step (docs/algorithm.md §1).
        ``gate_input``: added to the first layer's reset and update gates (HRNN's user term)."""
        new_states = []
        if self.one_hot_layer is not None:  # dropout_p_embed acts on this layer's output
            x = self._dropout(self.embed_dropout, self.one_hot_layer(items, states[0], gate_input))
            new_states.append(x)
        else:
            x = self._dropout(self.embed_dropout, self._input_embedding(items) if embedded is None else embedded)
        for layer, state in zip(self.gru_layers, states[len(new_states) :]):
            x = self._dropout(self.hidden_dropout, layer(x, state, gate_input if not new_states else None))
            new_states.append(x)
        return new_states

    def _dropout(self, dropout, x):
        return dropout(x) if dropout.p and self.training else x  # skips the module call in the hot loop

    def other_parameter(self):
        """Saved with RecBole's checkpoints: the sampler's state, so that a resumed run is exact."""
        return {"sampler": self.sampler.state_dict()}

    def load_other_parameter(self, parameters):
        if parameters and "sampler" in parameters:
            self.sampler.load_state_dict(parameters["sampler"])

    def _state_sizes(self):
        return self.layer_sizes

    def _zero_states(self, batch_size):
        return [self.item_embedding.weight.new_zeros(batch_size, size) for size in self._state_sizes()]

    # ---- training ----

    def reset_session_state(self):
        """Forget the carried hidden states: called at the start of every training epoch."""
        self._session_state = None

    def _carried_states(self, batch):
        """The states carried to the batch's rows from the previous step."""
        if self._session_state is None:
            self._session_state = self._zero_states(self.n_slots)
        states = self._session_state
        if batch.slots is not None:
            states = [state.index_select(0, batch.slots) for state in states]
        return states

    def _starting_states(self, batch):
        """The states a training step starts from: the carried ones, zero where a row starts a session."""
        starts = batch.starts.unsqueeze(1)
        return [state.masked_fill(starts, 0.0) for state in self._carried_states(batch)]

    def _train_step(self, batch, embedded):
        """The rows' output of one training step (zero state where a row starts a session); the
        new states are carried to the next step."""
        new_states = self._step(batch.inputs, self._starting_states(batch), embedded)
        self._carry(batch, new_states)
        return new_states[-1]

    def _scores(self, output, rows, bias, items, scored):
        """Scores h · W[i] + b[i] of the step's distinct items (``rows``, ``bias``: theirs)."""
        return torch.addmm(bias, output, rows.t())

    def _carry(self, batch, new_states):
        """Keep the new states (detached: truncated back-propagation of one step) for the next step."""
        new_states = [state.detach() for state in new_states]
        if batch.slots is None:
            self._session_state = new_states
        else:
            for carried, new in zip(self._session_state, new_states):
                carried.index_copy_(0, batch.slots, new)

    def _columns(self, batch):
        """The step's distinct scored items and where each lookup finds its row.

        Returns (items, slots, n_scored, scored): ``items`` the sorted distinct items (every item
        with ``n_sample: -1``); ``slots[:n_scored]`` the distinct item of each scored column (the
        rows' targets, then the samples), ``slots[n_scored:]`` that of each row's input (with
        constrained_embedding, whose input rows are the output rows); ``scored`` marks the items
        that are scored (None: all are), since an item that is only an input must not move its bias.
        """
        n_rows = len(batch.targets)
        shared = self.constrained_embedding
        if self.full_softmax:
            slots = torch.cat((batch.targets, batch.inputs)) if shared else batch.targets  # an item's slot is its id
            return self._every_item, slots, n_rows, None
        samples = self.sampler.sample()  # already on the model's device
        looked_up = (batch.targets, samples, batch.inputs) if shared else (batch.targets, samples)
        items, slots = torch.unique(torch.cat(looked_up), return_inverse=True)
        n_scored = n_rows + len(samples)
        scored = None
        if shared:  # an item that is only an input is scored too (weight 0), but its bias is not touched
            scored = torch.zeros(len(items), dtype=torch.bool, device=items.device).index_fill_(0, slots[:n_scored], True)
        return items, slots, n_scored, scored

    def _negative_counts(self, batch, columns, items):
        """(own, counts): each row's own column, and how often each distinct item is a negative
        of every row, its own column once more than for that row (docs/algorithm.md §2).

        ``columns``: the distinct item of each in-batch column (the rows' targets), then of each
        sample. Every column but the row's own target is a negative of the row; with log-Q, a
        sampled occurrence counts supp^(logq·(1-α)) times. At the epoch's tail, ``logq_tail:
        original`` does what the original does there: it corrects the first B columns as in-batch
        ones, the rows' targets and the first B - rows samples. With ``n_sample: -1`` every item
        but the padding item 0 is a negative of every row but its own.
        """
        dtype = self.item_embedding.weight.dtype
        n_rows = len(batch.targets)
        if self.full_softmax:
            counts = torch.ones(len(items), dtype=dtype, device=items.device)
            counts[0] = 0.0
            return batch.targets, counts
        if self.sample_weight is None:
            counts = torch.bincount(columns, minlength=len(items)).to(dtype)
        else:
            in_batch = self.n_slots if self.logq_tail_as_original else n_rows
            counts = torch.bincount(columns[:in_batch], minlength=len(items)).to(dtype)
            counts += torch.bincount(columns[in_batch:], minlength=len(items)) * self.sample_weight[items]
        return columns[:n_rows], counts

    def calculate_loss(self, batch):
        """Loss of one session-parallel step by autograd; carries the (detached) hidden states to the next step.

        Each distinct item of the step (its targets and samples, and with constrained_embedding
        its inputs) is looked up and scored once, and the loss counts it as often as it is a
        negative: the loss of docs/algorithm.md §2-§3 over all rows' targets and the n_sample samples,
        with fewer columns to score, and embedding gradients with one row per item. With
        ``n_sample: -1`` every item is scored, once, and is a negative of every row but its own.
        The step loss is the rows' sum divided by B, the full number of slots, as in the original.
        ``train_step`` computes the same step with its gradients fused (the trainer's default).
        """
        n_rows = len(batch.targets)
        items, slots, n_scored, scored = self._columns(batch)
        if self.constrained_embedding:
            rows, embedded = gather_distinct_rows(self.item_embedding.weight, items, slots[n_scored:])
        else:
            rows, embedded = gather_distinct_rows(self.item_embedding.weight, items), None
        bias = gather_distinct_rows(self.item_bias.weight, items, touched=scored).squeeze(1)

        heads, log_prior = self._heads(self._train_step(batch, embedded))
        scores = self._scores(heads, rows, bias, items, scored)
        if self.logq:
            scores.sub_(self.log_q_correction[items])  # in place: the product's backward does not need it
        scores = self.final_activation(scores)
        own, counts = self._negative_counts(batch, slots[:n_scored], items)
        weights = counts.expand(n_rows, len(items)).clone()
        weights[torch.arange(n_rows, device=own.device), own] -= 1.0
        if log_prior is None:
            loss = self.loss_fct(own, scores, weights)
        else:
            loss = mixture_cross_entropy(own, scores.view(n_rows, self.mixture.n_heads, -1), weights, log_prior)
        return loss if n_rows == self.n_slots else loss * (n_rows / self.n_slots)

    def train_step(self, batch, optimizer):
        """One training step with fused gradients (docs/algorithm.md §3, "The fused step"): the GRU's
        forward and backward (``_taped_train_step``), the scores, final activation and loss with
        their gradients in one function (``fused_step.py``, compiled with ``compile: True``), and
        the step's item rows updated from dense row gradients (no sparse tensors). The same step as
        ``calculate_loss`` + backward + ``optimizer.step()`` (tests/test_fused_step.py). Returns the
        step loss, a 0-dim tensor that nothing here reads (no per-step synchronisation).
        """
        items, slots, n_scored, scored = self._columns(batch)
        rows = self.item_embedding.weight.detach().index_select(0, items)
        inputs = slots[n_scored:]
        embedded = rows.index_select(0, inputs) if self.constrained_embedding else None
        output, backward = self._taped_train_step(batch, embedded)
        bias = self.item_bias.weight.detach()[:, 0].index_select(0, items)
        if self.logq:
            bias = bias - self.log_q_correction[items]
        own, counts = self._negative_counts(batch, slots[:n_scored], items)
        loss, grad_output, grad_rows, grad_bias = self.fused_scores(output, rows, bias, own, counts)
        grad_embedded = backward(grad_output)
        if embedded is not None:
            grad_rows.index_add_(0, inputs, grad_embedded)
        optimizer.step()  # the GRU's weights (and a separate input embedding's sparse rows)
        optimizer.update_rows(self.item_embedding.weight, items, grad_rows)
        if scored is not None:
            items, grad_bias = items[scored], grad_bias[scored]
        optimizer.update_rows(self.item_bias.weight, items, grad_bias.unsqueeze(1))
        return loss

    def _taped_train_step(self, batch, embedded):
        """The fused step's GRU: (the scored state, without a graph; a function that takes its
        gradient, puts the weights' gradients in their ``.grad`` and returns the gradient for
        ``embedded``, None without it). A stack of GRU layers on the shared embedding goes by hand
        (GRULayer.forward_taped, backward_taped: no autograd graph for a step of a few small
        matrices); the one-hot layer, a separate input embedding and HRNN by autograd."""
        if not (self.STEP_BY_HAND and self.constrained_embedding):
            if embedded is not None:
                embedded.requires_grad_()
            output = self._scored_state(self._train_step(batch, embedded))

            def backward(grad):
                output.backward(grad)
                return None if embedded is None else embedded.grad

            return output.detach(), backward
        x, input_mask = self._taped_dropout(self.embed_dropout, embedded)
        taped, new_states = [], []
        for layer, state in zip(self.gru_layers, self._starting_states(batch)):  # as _step computes it
            new, tape = layer.forward_taped(x, state)
            x, mask = self._taped_dropout(self.hidden_dropout, new)
            taped.append((layer, tape, mask))
            new_states.append(x)
        self._carry(batch, new_states)

        def backward(grad):
            for layer, tape, mask in reversed(taped):
                grad = layer.backward_taped(grad if mask is None else grad * mask, tape)
            return grad if input_mask is None else grad * input_mask

        return x, backward

    def _taped_dropout(self, dropout, x):
        """(dropout(x), its scaled mask or None), drawn as torch's dropout draws it."""
        if not (dropout.p and self.training):
            return x, None
        mask = torch.empty_like(x).bernoulli_(1 - dropout.p).div_(1 - dropout.p)
        return x * mask, mask

    def _scored_state(self, output):
        """The state the items' scores read (HRNN: its session state)."""
        return output

    def _heads(self, output):
        """What the items' scores read, and the log mixture weights (None for the plain softmax head)."""
        if self.mixture is None:
            return output, None
        return self.mixture(output)

    # ---- prediction (RecBole's evaluator) ----

    def _read(self, item_seq, item_seq_len, advance, skip=None):
        """Every layer's state after reading each row's items oldest first, ``advance(position,
        states)`` giving the new states of one position. Rows whose items have ended, and entries
        where ``skip`` (rows × positions, bool) is True, keep their states."""
        states = self._zero_states(len(item_seq))
        for position in range(int(item_seq_len.max()) if len(item_seq_len) else 0):
            new_states = advance(position, states)
            alive = item_seq_len > position
            if skip is not None:
                alive = alive & ~skip[:, position]
            alive = alive.unsqueeze(1)
            states = [torch.where(alive, new, old) for new, old in zip(new_states, states)]
        return states

    def _encode(self, interaction):
        """The output after reading each row's items (the current session's, oldest first)."""
        item_seq = interaction[self.ITEM_SEQ]
        states = self._read(item_seq, interaction[self.ITEM_SEQ_LEN], lambda p, states: self._step(item_seq[:, p], states))
        return states[len(self.layer_sizes) - 1]

    def _row_scores(self, output, items):
        return (output * self.item_embedding(items)).sum(dim=1) + self.item_bias(items).squeeze(1)

    def _all_scores(self, output):
        return torch.addmm(self.item_bias.weight.squeeze(1), output, self.item_embedding.weight.t())

    def _log_probs(self, output, rows_per_chunk=None):
        """log p(item) of every item (item 0, padding, excluded) as the cross-entropy loss defines
        it: the softmax of the final activation's scores over all items, or the mixture of the K
        heads' softmaxes, in chunks of rows that bound the (rows, K, items) scores to ~16M values."""
        n_heads = 1 if self.mixture is None else self.mixture.n_heads
        rows_per_chunk = rows_per_chunk or max(1, (1 << 24) // (n_heads * self.n_items))
        n_rows = len(output[0] if isinstance(output, tuple) else output)
        parts = []
        for start in range(0, n_rows, rows_per_chunk):
            heads, log_prior = self._heads(_rows(output, slice(start, start + rows_per_chunk)))
            scores = self.final_activation(self._all_scores(heads))  # (rows * K, items)
            scores[:, 0] = float("-inf")
            if log_prior is None:
                parts.append(torch.log_softmax(scores, dim=1))
                continue
            # log pi_k + log softmax_k, in place: one (rows * K, items) tensor per chunk
            scores.sub_((torch.logsumexp(scores, dim=1) - log_prior.reshape(-1)).unsqueeze(1))
            parts.append(torch.logsumexp(scores.view(len(log_prior), n_heads, self.n_items), dim=1))
        return torch.cat(parts)

    def full_sort_log_probs(self, interaction):
        """log p(item) of every item for each row (item 0 gets -inf): the model's next-item
        distribution, for likelihood measures beside RecBole's ranking metrics (meaningful for a
        model trained with cross-entropy)."""
        return self._log_probs(self._encode(interaction))

    def predict(self, interaction):
        output, items = self._encode(interaction), interaction[self.ITEM_ID]
        if self.mixture is not None:
            return self._log_probs(output).gather(1, items.unsqueeze(1)).squeeze(1)
        return self._row_scores(output, items)

    def full_sort_predict(self, interaction):
        """Scores of all items: linear for the softmax head, as the original ranks them (its final
        activation belongs to the loss; for linear, relu, tanh and a positive leaky slope or ELU
        alpha the order is the same, up to ties they would add, while a negative slope or alpha is
        not monotone and would reorder), the mixture's log-probabilities for head: mos."""
        output = self._encode(interaction)
        return self._all_scores(output) if self.mixture is None else self._log_probs(output)


def _rows(output, rows):
    """Rows ``rows`` of a model output: a tensor, or a tuple of them (HRNN's)."""
    return tuple(part[rows] for part in output) if isinstance(output, tuple) else output[rows]
