"""RecBole built-in models that compute something other than what they promise, fixed in subclasses
of the same name (``get_model_class`` returns these in their place; weights and checkpoints are
RecBole's own)."""

import torch
from recbole.model.general_recommender.pop import Pop as RecBolePop


class Pop(RecBolePop):
    """Items ranked by their number of training interactions.

    RecBole's Pop adds 1 with ``item_cnt[items] = item_cnt[items] + 1``: an item that occurs several
    times in one batch is counted once, and the negatives RecBole samples for pointwise models by
    default are counted as well, so its counts (and metrics) change with the batch size and the
    seed. Here each positive training row counts once.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.LABEL = config["LABEL_FIELD"]

    def calculate_loss(self, interaction):
        items = interaction[self.ITEM_ID]
        if self.LABEL in interaction:  # rows RecBole sampled as negatives carry label 0
            items = items[interaction[self.LABEL] > 0]
        self.item_cnt.index_add_(0, items, torch.ones_like(items).unsqueeze(1))
        self.max_cnt = torch.max(self.item_cnt, dim=0)[0]
        return torch.nn.Parameter(torch.zeros(1)).to(self.device)


BUILTIN_FIXES = {"Pop": Pop}
