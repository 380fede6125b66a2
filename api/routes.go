package api

import "net/http"

// routeTable is every route of the API, in one place. openapi.yaml must
// specify exactly these (a test checks it), and the access-control test
// must know each of them.
func (s *Server) routeTable() []Route {
	return []Route{
		{Method: http.MethodGet, Path: "/healthz", Action: "health", Open: true, handler: s.health},
		{Method: http.MethodGet, Path: "/readyz", Action: "ready", Open: true, handler: s.ready},
		{Method: http.MethodGet, Path: "/metrics", Action: "metrics", Open: true, handler: s.metricsHandler()},

		{Method: http.MethodGet, Path: "/v1/repos", Action: "repo.list", handler: s.listRepos},
		{Method: http.MethodPost, Path: "/v1/repos", Action: "repo.create", handler: s.createRepo},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}", Action: "repo.get", handler: s.getRepo},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/import", Action: "repo.import_status", handler: s.importStatus},

		{Method: http.MethodGet, Path: "/v1/repos/{repo}/upstream", Action: "upstream.get", handler: s.getUpstream},
		{Method: http.MethodPut, Path: "/v1/repos/{repo}/upstream", Action: "upstream.set", handler: s.setUpstream},
		{Method: http.MethodDelete, Path: "/v1/repos/{repo}/upstream", Action: "upstream.delete", handler: s.deleteUpstream},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/upstream/sync", Action: "upstream.sync", handler: s.syncUpstream},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/upstream/webhook", Action: "upstream.webhook", Open: true, MaxBody: 1 << 20, handler: s.upstreamWebhook},

		{Method: http.MethodGet, Path: "/v1/repos/{repo}/kv", Action: "kv.list", handler: s.listKeys},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/kv/{key}", Action: "kv.get", handler: s.getKey},
		{Method: http.MethodHead, Path: "/v1/repos/{repo}/kv/{key}", Action: "kv.head", handler: s.getKey},
		{Method: http.MethodPut, Path: "/v1/repos/{repo}/kv/{key}", Action: "kv.put", handler: s.putKey},
		{Method: http.MethodDelete, Path: "/v1/repos/{repo}/kv/{key}", Action: "kv.delete", handler: s.deleteKey},

		{Method: http.MethodPost, Path: "/v1/repos/{repo}/commits", Action: "commit.create", handler: s.createCommit},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/commits", Action: "commit.list", handler: s.listCommits},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/commits/{rev}", Action: "commit.get", handler: s.getCommit},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/commits/{rev}/rollout", Action: "commit.rollout", handler: s.rollout},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/diff", Action: "diff", handler: s.diff},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/watch", Action: "watch", handler: s.watch},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/revert", Action: "revert", handler: s.revert},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/rollback", Action: "rollback", handler: s.rollback},

		{Method: http.MethodGet, Path: "/v1/repos/{repo}/secrets", Action: "secret.list", handler: s.listSecrets},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/secrets/rotate", Action: "secret.rotate", handler: s.rotateSecrets},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/secrets/{key}", Action: "secret.get", handler: s.getSecret},
		{Method: http.MethodPut, Path: "/v1/repos/{repo}/secrets/{key}", Action: "secret.put", handler: s.putSecret},
		{Method: http.MethodDelete, Path: "/v1/repos/{repo}/secrets/{key}", Action: "secret.delete", handler: s.deleteSecret},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/webhooks", Action: "webhook.create", handler: s.createWebhook},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/webhooks", Action: "webhook.list", handler: s.listWebhooks},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/webhooks/{id}", Action: "webhook.get", handler: s.getWebhook},
		{Method: http.MethodDelete, Path: "/v1/repos/{repo}/webhooks/{id}", Action: "webhook.delete", handler: s.deleteWebhook},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/webhooks/{id}/deliveries", Action: "webhook.deliveries", handler: s.listDeliveries},

		{Method: http.MethodGet, Path: "/v1/repos/{repo}/reconcilers", Action: "reconciler.list", handler: s.listReconcilers},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/reconcilers/{name}/status", Action: "reconciler.report", handler: s.reportReconciler},
		{Method: http.MethodDelete, Path: "/v1/repos/{repo}/reconcilers/{name}", Action: "reconciler.delete", handler: s.deleteReconciler},

		{Method: http.MethodPost, Path: "/v1/tokens", Action: "token.create", handler: s.createToken},
		{Method: http.MethodGet, Path: "/v1/tokens", Action: "token.list", handler: s.listTokens},
		{Method: http.MethodDelete, Path: "/v1/tokens/{id}", Action: "token.revoke", handler: s.revokeToken},
		{Method: http.MethodGet, Path: "/v1/audit", Action: "audit.query", handler: s.queryAudit},

		{Method: http.MethodPost, Path: "/v1/repos/{repo}/txns", Action: "txn.begin", handler: s.beginTxn},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/txns", Action: "txn.list", handler: s.listTxns},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/txns/{id}", Action: "txn.get", handler: s.getTxn},
		{Method: http.MethodDelete, Path: "/v1/repos/{repo}/txns/{id}", Action: "txn.abort", handler: s.abortTxn},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/txns/{id}/diff", Action: "txn.diff", handler: s.txnDiff},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/txns/{id}/commit", Action: "txn.commit", handler: s.commitTxn},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/txns/{id}/rebase", Action: "txn.rebase", handler: s.rebaseTxn},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/txns/{id}/approvals", Action: "txn.approve", handler: s.approveTxn},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/txns/{id}/reports", Action: "txn.report", handler: s.reportTxn},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/txns/{id}/kv", Action: "txn.kv.list", handler: s.listKeys},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/txns/{id}/kv/{key}", Action: "txn.kv.get", handler: s.getKey},
		{Method: http.MethodHead, Path: "/v1/repos/{repo}/txns/{id}/kv/{key}", Action: "txn.kv.head", handler: s.getKey},
		{Method: http.MethodPut, Path: "/v1/repos/{repo}/txns/{id}/kv/{key}", Action: "txn.kv.put", handler: s.putKey},
		{Method: http.MethodDelete, Path: "/v1/repos/{repo}/txns/{id}/kv/{key}", Action: "txn.kv.delete", handler: s.deleteKey},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/txns/{id}/commits", Action: "txn.commit_batch", handler: s.createCommit},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/txns/{id}/secrets", Action: "txn.secret.list", handler: s.listSecrets},
		{Method: http.MethodPost, Path: "/v1/repos/{repo}/txns/{id}/secrets/rotate", Action: "txn.secret.rotate", handler: s.rotateSecrets},
		{Method: http.MethodGet, Path: "/v1/repos/{repo}/txns/{id}/secrets/{key}", Action: "txn.secret.get", handler: s.getSecret},
		{Method: http.MethodPut, Path: "/v1/repos/{repo}/txns/{id}/secrets/{key}", Action: "txn.secret.put", handler: s.putSecret},
		{Method: http.MethodDelete, Path: "/v1/repos/{repo}/txns/{id}/secrets/{key}", Action: "txn.secret.delete", handler: s.deleteSecret},

		// Git's smart HTTP protocol (docs/GIT.md): not in openapi.yaml.
		{Method: http.MethodGet, Path: "/git/{repo}.git/info/refs", Action: "git.advertise", Git: true, handler: s.gitInfoRefs},
		{Method: http.MethodPost, Path: "/git/{repo}.git/git-upload-pack", Action: "git.fetch", Git: true, ReadOnly: true, handler: s.gitUploadPack},
		{Method: http.MethodPost, Path: "/git/{repo}.git/git-receive-pack", Action: "git.push", Git: true, MaxBody: s.opts.MaxPushBytes, handler: s.gitReceivePack},
	}
}
