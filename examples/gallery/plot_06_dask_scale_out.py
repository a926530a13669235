"""
# Scale out with Dask

Two ways to spread work over the workers of a Dask cluster (``pip install
'vilu-sklearn[dask]'``):

* `vilu_sklearn.dask_predict` scores a Dask array of image embeddings block by
  block; the fitted estimator is shipped to each worker once, not once per block;
* joblib's ``"dask"`` backend runs the fits of a ``GridSearchCV`` on the cluster.

A small local cluster (two single-threaded workers, in this process to keep the
page fast) stands in for a real one here; with a real cluster, connect the
``Client`` to its scheduler address instead (``Client("tcp://host:8786")``).
"""

# %%
import dask.array as da
import joblib
import numpy as np
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV

from vilu_sklearn import ViLUClassifier, correctness, dask_predict
from vilu_sklearn.datasets import make_vlm_embeddings
from vilu_sklearn.metrics import auroc, get_scorer

d = make_vlm_embeddings(3000, 8, 64, accuracy=0.7, random_state=0)
y_correct = correctness(d.X_img, d.X_txt, d.labels)
clf = ViLUClassifier(
    hidden_layer_sizes=(32,),
    max_epochs=5,
    device="cpu",
    random_state=0,
).fit(d.X_img[:1000], d.X_txt, y_correct[:1000])


# %%
# Start a cluster
# ---------------
cluster = LocalCluster(
    n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
)
client = Client(cluster)

# %%
# Parallel prediction on a Dask array
# -----------------------------------
X_new = da.from_array(d.X_img[1000:], chunks=(500, -1))  # 4 blocks of rows
scores = dask_predict(clf, X_new, d.X_txt)  # lazy, one task per block
print("blocks:", scores.numblocks, "shape:", scores.shape)
confidence = scores.compute()
assert np.allclose(confidence, clf.decision_function(d.X_img[1000:], d.X_txt))
print(f"AUROC on the new images: {auroc(y_correct[1000:], confidence):.3f}")

# %%
# A hyper-parameter sweep on the cluster
# --------------------------------------
grid = GridSearchCV(
    clf.set_params(text_embeddings=d.X_txt),
    {"lr": [0.01, 0.05], "hidden_layer_sizes": [(16,), (32,)]},
    scoring=get_scorer("auroc"),
    cv=2,
)
with joblib.parallel_backend("dask"):
    grid.fit(d.X_img[:1000], y_correct[:1000])
print("best:", grid.best_params_, f"AUROC {grid.best_score_:.3f}")

client.close()
cluster.close()
