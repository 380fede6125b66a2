package api

import (
	"net/http"

	"github.com/gitstate/gitstate"
	"github.com/gitstate/gitstate/api/wire"
)

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, wire.Health{Status: "ok"})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			s.writeError(w, r, gitstate.Errorf(gitstate.KindUnavailable, "not_ready", "%v", err))
			return
		}
	}
	writeJSON(w, http.StatusOK, wire.Health{Status: "ready"})
}
