module github.com/gitstate/gitstate

go 1.26.8
