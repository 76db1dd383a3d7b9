"""GRU4RecPlus: GRU4Rec as in the original (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018).

Session-parallel mini-batches (REFERENCE §1), scores over in-batch targets plus shared
supp^α negatives (§2), the ranking losses (§3). Training steps come from
``SessionParallelDataLoader``; validation and test go through RecBole's full-sort evaluator,
which calls ``full_sort_predict`` on RecBole's item-list rows.
"""

import numpy as np
import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from ..errors import PluginError
from ..loss import build_loss
from ..sampler import PopularitySampler
from .layers import GateProjection, GRULayer, gather_distinct_rows, init_uniform_, parse_final_activation


def _require(condition, message):
    if not condition:
        raise PluginError(message)


def _layer_sizes(value):
    sizes = [value] if isinstance(value, int) else list(value) if isinstance(value, (list, tuple)) else None
    _require(
        sizes and all(isinstance(size, int) and size > 0 for size in sizes),
        f"layers must be a list of positive GRU sizes such as [100], got {value!r}",
    )
    return sizes


class GRU4RecPlus(SequentialRecommender):
    """GRU4Rec with session-parallel training, sampled negatives and ranking losses."""

    input_type = InputType.POINTWISE
    session_parallel = True  # trained by SessionParallelTrainer on SessionParallelDataset

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.layer_sizes = _layer_sizes(config["layers"])
        hidden_size = self.layer_sizes[-1]
        self.embedding_size = config["embedding"]
        self.constrained_embedding = bool(config["constrained_embedding"])
        _require(
            isinstance(self.embedding_size, int) and self.embedding_size >= 0,
            f"embedding must be 0 (none or shared) or a positive size, got {self.embedding_size!r}",
        )
        _require(
            not (self.constrained_embedding and self.embedding_size),
            "constrained_embedding shares the output embedding as input embedding: set embedding: 0 with it",
        )
        for key in ("dropout_p_embed", "dropout_p_hidden"):
            _require(0 <= config[key] < 1, f"{key} must be in [0, 1), got {config[key]}")
        self.logq = float(config["logq"] or 0.0)
        _require(self.logq >= 0, f"logq must be >= 0, got {self.logq}")
        _require(
            self.logq == 0 or str(config["loss"]).lower() == "cross-entropy",
            "logq (log-Q correction) applies to loss: cross-entropy only; set logq: 0 for other losses",
        )
        self.loss_fct = build_loss(config["loss"], bpreg=config["bpreg"])
        self.final_activation = parse_final_activation(config["final_act"])

        supports = np.bincount(dataset.inter_feat[self.ITEM_ID].numpy(), minlength=self.n_items)
        self.sampler = PopularitySampler(
            supports, config["sample_alpha"], config["n_sample"], config["sample_cache_size"], seed=config["seed"]
        )
        log_prob = torch.log(torch.as_tensor(self.sampler.probabilities).clamp_min(1e-30)).float()
        self.register_buffer("log_sample_prob", log_prob, persistent=False)

        # output item embedding and bias: the score of item i is h · W[i] + b[i]
        self.item_embedding = nn.Embedding(self.n_items, hidden_size)
        init_uniform_(self.item_embedding.weight, self.n_items, hidden_size)
        self.item_bias = nn.Embedding(self.n_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        first_size = self.layer_sizes[0]
        if self.embedding_size:
            self.input_embedding = nn.Embedding(self.n_items, self.embedding_size)
            init_uniform_(self.input_embedding.weight, self.n_items, self.embedding_size)
        if self.constrained_embedding or self.embedding_size:
            self.first_projection = GateProjection(self.embedding_size or hidden_size, first_size)
        else:  # one-hot input: the first layer's input weights are an item table of gate values
            self.one_hot_gates = nn.Embedding(self.n_items, 3 * first_size)
            for gate in self.one_hot_gates.weight.split(first_size, dim=1):
                init_uniform_(gate, self.n_items, first_size)
            self.one_hot_bias = nn.Parameter(torch.zeros(3 * first_size))
        self.gate_projections = nn.ModuleList(
            GateProjection(size_in, size_out) for size_in, size_out in zip(self.layer_sizes, self.layer_sizes[1:])
        )
        self.gru_layers = nn.ModuleList(GRULayer(size) for size in self.layer_sizes)
        self.embed_dropout = nn.Dropout(config["dropout_p_embed"])
        self.hidden_dropout = nn.Dropout(config["dropout_p_hidden"])
        self._session_state = None

    # ---- one step of the GRU stack, shared by training and prediction ----

    def _input_gates(self, items, embedded=None):
        """First-layer input projection of ``items``; ``embedded``: their rows of the input table, if looked up."""
        if self.constrained_embedding or self.embedding_size:
            if embedded is None:
                table = self.item_embedding if self.constrained_embedding else self.input_embedding
                embedded = F.embedding(items, table.weight, sparse=True)
            return self.first_projection(self.embed_dropout(embedded))
        gates = F.embedding(items, self.one_hot_gates.weight, sparse=True)
        if self.training and self.embed_dropout.p > 0:  # dropout on a one-hot vector drops the whole item
            gates = gates * self.embed_dropout(torch.ones_like(gates[:, :1]))
        return gates + self.one_hot_bias

    def _step(self, gates, states):
        """One step from the first layer's input gates; returns the new states (one per layer) and the output after dropout."""
        new_states = []
        for depth, layer in enumerate(self.gru_layers):
            if depth:
                gates = self.gate_projections[depth - 1](output)
            new_states.append(layer(gates, states[depth]))
            output = self.hidden_dropout(new_states[-1])
        return new_states, output

    def _zero_states(self, batch_size):
        return [self.item_bias.weight.new_zeros(batch_size, size) for size in self.layer_sizes]

    # ---- training ----

    def reset_session_state(self):
        """Forget the carried hidden states: called at the start of every training epoch."""
        self._session_state = None

    def _negative_weights(self, slots, n_rows, n_items, active, dtype):
        """Per loss row, how many of its negatives are each distinct item, and the row's own item.

        ``slots[j]``: the distinct item of column j (the n_rows targets, then the samples). Every
        column but the row's own target is a negative of the row; idle slots (``active`` False)
        are neither rows nor negatives. Returns (own item of each row, rows × n_items weights).
        """
        own = slots[:n_rows]
        if active is not None:
            own = own[active]
            slots = torch.cat((own, slots[n_rows:]))
        weights = torch.bincount(slots, minlength=n_items).to(dtype).expand(len(own), n_items).clone()
        rows = torch.arange(len(own), device=own.device)
        weights.index_put_((rows, own), weights.new_full((), -1.0), accumulate=True)
        return own, weights

    def calculate_loss(self, batch):
        """Loss of one session-parallel step; carries the (detached) hidden states to the next step.

        Each distinct item of the step (its targets and samples, and with constrained_embedding
        its inputs) is looked up and scored once, and the loss counts it as often as it is a
        negative: the loss of REFERENCE §2 over all B + n_sample columns, with fewer columns to
        score, and embedding gradients with one row per item (no duplicate rows to merge).
        """
        n_rows = len(batch.targets)
        samples = self.sampler.sample().to(batch.targets.device)
        shared = self.constrained_embedding
        looked_up = (batch.inputs, batch.targets, samples) if shared else (batch.targets, samples)
        items, slots = torch.unique(torch.cat(looked_up), return_inverse=True)
        bias = gather_distinct_rows(self.item_bias.weight, items).squeeze(1)
        if shared:
            weight, embedded = gather_distinct_rows(self.item_embedding.weight, items, slots[:n_rows])
            gates = self._input_gates(batch.inputs, embedded)
            slots = slots[n_rows:]
        else:
            weight = gather_distinct_rows(self.item_embedding.weight, items)
            gates = self._input_gates(batch.inputs)

        states = self._session_state or self._zero_states(n_rows)
        starts = batch.starts.unsqueeze(1)
        states = [state.masked_fill(starts, 0.0) for state in states]
        new_states, output = self._step(gates, states)
        self._session_state = [state.detach() for state in new_states]

        scores = torch.addmm(bias, output, weight.t())  # h · W[i] + b[i] for each distinct item i
        if self.logq:
            scores = scores - self.logq * self.log_sample_prob[items]
        if batch.active is not None:
            scores = scores[batch.active]
        scores = self.final_activation(scores)
        own, weights = self._negative_weights(slots, n_rows, len(items), batch.active, scores.dtype)
        return self.loss_fct(own, scores, weights)  # each row's positive: its own target's column

    # ---- prediction (RecBole's evaluator) ----

    def _encode(self, item_seq, item_seq_len):
        """Final hidden state after reading each row's items (a session's items, oldest first)."""
        states = self._zero_states(len(item_seq))
        for position in range(int(item_seq_len.max()) if len(item_seq_len) else 0):
            new_states, _ = self._step(self._input_gates(item_seq[:, position]), states)
            alive = (item_seq_len > position).unsqueeze(1)
            states = [torch.where(alive, new, old) for new, old in zip(new_states, states)]
        return states[-1]

    def predict(self, interaction):
        output = self._encode(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        items = interaction[self.ITEM_ID]
        return (output * self.item_embedding(items)).sum(dim=1) + self.item_bias(items).squeeze(1)

    def full_sort_predict(self, interaction):
        """Scores of all items (linear: the final activation is monotone and would only add ties)."""
        output = self._encode(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return torch.addmm(self.item_bias.weight.squeeze(1), output, self.item_embedding.weight.t())
