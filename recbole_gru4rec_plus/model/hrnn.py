"""HRNN: personalised session-based recommendation (Quadrana et al., RecSys 2017; docs/algorithm.md §5).

GRU4RecPlus's session GRU, scores, sampler, losses and log-Q, plus a user-level GRU with one
step per finished session: when a user's next session starts, the user state takes the session
GRU's last-layer state (the one carried after the session's last input event) as input, and
the session GRU starts from dropout(tanh(W_init · user state + b_init)) instead of zero. A user's
first session starts from zero states. ``hrnn_mode: all`` also adds the user state (times W_us)
to the first session layer's reset and update gates at every step; ``user_to_output`` adds a
user term to every item's score. Training is user-parallel: each slot walks one user's sessions
in order. As in the original code (mquad/hgru4rec), the session step reads the initialised
session state (not the stale one of the previous session); the deeper session layers, if any,
reset only when a new user starts; dropout acts on the new user state, on each session layer's
state and on the initialisation.
"""

import torch
from torch import nn

from .. import options
from ..data.dataset import SESSION_START_LIST
from ..data.user_sessions import UserSessionDataset
from .gru4rec_plus import GRU4RecPlus
from .layers import GRULayer, gather_distinct_rows, init_uniform_


class HRNN(GRU4RecPlus):
    """Hierarchical RNN: a session GRU initialised (and, in mode 'all', steered) by a user GRU."""

    DATASET = UserSessionDataset
    TRAINING_UNIT = "user"  # each slot of a training step walks one user's sessions
    HIDDEN_DROPOUT_KEY = "dropout_p_hidden_ses"
    STEP_BY_HAND = False  # the fused step runs the session and user GRUs by autograd
    OPTIONS = {
        **{key: check for key, check in GRU4RecPlus.OPTIONS.items() if key != "dropout_p_hidden"},
        "hrnn_mode": options.choice("init", "all"),
        "user_layers": options.positive_ints(),
        "dropout_p_hidden_ses": options.number(low=0, high=1, high_open=True, example=0.1),
        "dropout_p_hidden_usr": options.number(low=0, high=1, high_open=True, example=0.1),
        "dropout_p_init": options.number(low=0, high=1, high_open=True, example=0.1),
        "user_to_output": options.boolean(),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.user_sizes = [config["user_layers"]] if isinstance(config["user_layers"], int) else list(config["user_layers"])
        user_size, first_size = self.user_sizes[-1], self.layer_sizes[0]
        self.user_gru_layers = nn.ModuleList(
            GRULayer(size_in, size) for size_in, size in zip([self.layer_sizes[-1], *self.user_sizes], self.user_sizes)
        )
        self.session_init = nn.Linear(user_size, first_size)
        init_uniform_(self.session_init.weight, user_size, first_size)
        nn.init.zeros_(self.session_init.bias)
        self.user_gates = None
        if config["hrnn_mode"] == "all":  # the user state's share of the first layer's reset and update gates
            self.user_gates = nn.Linear(user_size, 2 * first_size, bias=False)
            for gate in self.user_gates.weight.split(first_size, dim=0):
                init_uniform_(gate, user_size, first_size)
        self.user_output = None
        if config["user_to_output"]:  # score of item i gets + user state · U[i]
            self.user_output = nn.Embedding(self.n_items, user_size)
            init_uniform_(self.user_output.weight, self.n_items, user_size)
        self.user_dropout = nn.Dropout(config["dropout_p_hidden_usr"])
        self.init_dropout = nn.Dropout(config["dropout_p_init"])

    def _state_sizes(self):
        return self.layer_sizes + self.user_sizes  # the session layers', then the user layers'

    def _advance(self, items, states, starts, user_starts, embedded=None):
        """One step of both GRUs: the user GRU moves where a row starts a session (from the
        session state carried out of the previous one) and resets where it starts a user; the
        session GRU starts from the user state there; then the session GRU reads ``items``.
        ``starts``, ``user_starts``: bool (rows, 1). Returns every layer's new state."""
        n_session = len(self.layer_sizes)
        session, user = states[:n_session], states[n_session:]
        x, new_user = session[-1], []
        for layer, state in zip(self.user_gru_layers, user):
            updated = self._dropout(self.user_dropout, layer(x, state))
            x = torch.where(starts, updated, state).masked_fill(user_starts, 0.0)
            new_user.append(x)
        initial = self._dropout(self.init_dropout, torch.tanh(self.session_init(x)))
        session = [torch.where(starts, initial, session[0]).masked_fill(user_starts, 0.0)]
        session += [state.masked_fill(user_starts, 0.0) for state in states[1:n_session]]
        gates = self.user_gates(x) if self.user_gates is not None else None
        return self._step(items, session, embedded, gates) + new_user

    def _output(self, states):
        """(session output, user state) of a step: what the scores read."""
        return states[len(self.layer_sizes) - 1], states[-1]

    def _train_step(self, batch, embedded):
        states = self._advance(batch.inputs, self._carried_states(batch), batch.starts.unsqueeze(1),
                               batch.user_starts.unsqueeze(1), embedded)
        self._carry(batch, states)
        return self._output(states)

    def _heads(self, output):
        if self.mixture is None:
            return output, None
        heads, log_prior = self.mixture(output[0])  # the heads read the session state; the user term joins each
        return (heads, output[1].repeat_interleave(self.mixture.n_heads, dim=0)), log_prior

    def _why_not_fused(self, config):
        return super()._why_not_fused(config) or ("user_to_output: True" if config["user_to_output"] else None)

    def _scored_state(self, output):
        return output[0]

    def _scores(self, output, rows, bias, items, scored):
        session, user = output
        scores = torch.addmm(bias, session, rows.t())
        if self.user_output is not None:
            scores = scores.addmm_(user, gather_distinct_rows(self.user_output.weight, items, touched=scored).t())
        return scores

    # ---- prediction: warm-up on the user's earlier sessions, then the current session ----

    def _encode(self, interaction):
        """(session output, user state) after stepping each row's history (the user's earlier
        sessions and the current one, oldest first) exactly as training steps it: an earlier
        session's last event is never an input (it is only a target), and the user GRU takes the
        session state after its last input."""
        item_seq, flags = interaction[self.ITEM_SEQ], interaction[SESSION_START_LIST]
        user_start = torch.zeros_like(flags)
        user_start[:, 0] = True
        starts = (flags | user_start).unsqueeze(2)
        last_of_session = torch.zeros_like(flags)
        last_of_session[:, :-1] = flags[:, 1:]

        def advance(position, states):
            return self._advance(item_seq[:, position], states, starts[:, position], user_start[:, position : position + 1])

        states = self._read(item_seq, interaction[self.ITEM_SEQ_LEN], advance, skip=last_of_session)
        return self._output(states)

    def _row_scores(self, output, items):
        scores = super()._row_scores(output[0], items)
        return scores if self.user_output is None else scores + (output[1] * self.user_output(items)).sum(dim=1)

    def _all_scores(self, output):
        scores = super()._all_scores(output[0])
        return scores if self.user_output is None else scores.addmm_(output[1], self.user_output.weight.t())
