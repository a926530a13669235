"""
# Tune ViLU with GridSearchCV

With the class-prompt embeddings given at construction
(``ViLUClassifier(text_embeddings=X_txt)``) the estimator has the standard
``fit(X, y)`` form: cross-validation splits the images and their ``y_correct``
labels, never the (K, d) matrix of class prompts. The scorers of
`vilu_sklearn.metrics` rank the candidates by a failure-prediction metric
(greater is better; metrics where lower is better are negated, ``neg_aurc``).
"""

# %%
import pandas as pd
from sklearn.model_selection import GridSearchCV

from vilu_sklearn import ViLUClassifier, correctness
from vilu_sklearn.datasets import make_vlm_embeddings
from vilu_sklearn.metrics import get_scorer, get_scorer_names

d = make_vlm_embeddings(600, 6, 32, accuracy=0.7, random_state=0)
y_correct = correctness(d.X_img, d.X_txt, d.labels)
print("scorers:", get_scorer_names())

# %%
# A small grid over the width of the head and the learning rate; every fit is
# short (few epochs, early stopping off) to keep the example fast.
base = ViLUClassifier(
    text_embeddings=d.X_txt,
    max_epochs=4,
    early_stopping=False,
    device="cpu",
    random_state=0,
)
grid = GridSearchCV(
    base,
    param_grid={"hidden_layer_sizes": [(16,), (64,)], "lr": [0.01, 0.05]},
    scoring={"auroc": get_scorer("auroc"), "neg_aurc": get_scorer("neg_aurc")},
    refit="auroc",
    cv=2,
)
grid.fit(d.X_img, y_correct)
results = pd.DataFrame(grid.cv_results_)[
    ["param_hidden_layer_sizes", "param_lr", "mean_test_auroc", "mean_test_neg_aurc"]
]
print(results.round(3).to_string(index=False))
print("best:", grid.best_params_, f"AUROC {grid.best_score_:.3f}")
