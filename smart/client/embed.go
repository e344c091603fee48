package client

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// SecurityHeaders sets the headers a SMART app page should send. ehrOrigins
// are the EHR origins allowed to frame the app (CSP frame-ancestors); none
// means the app may not be framed. Tokens are kept out of referrers and
// caches, and no inline script is allowed.
func SecurityHeaders(h http.Header, ehrOrigins ...string) {
	ancestors := "'none'"
	if len(ehrOrigins) > 0 {
		ancestors = strings.Join(ehrOrigins, " ")
	}
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors "+ancestors)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// WebMessaging is the SMART Web Messaging (STU1) part of a token response,
// an optional capability: the handle that correlates messages and the EHR
// origin the app must post to (never "*").
type WebMessaging struct {
	Handle string
	Origin string
}

// WebMessagingOf reads the SMART Web Messaging parameters of a session; ok
// is false when the EHR offered none.
func WebMessagingOf(s *Session) (WebMessaging, bool) {
	h, _ := s.Token.Extra("smart_web_messaging_handle").(string)
	o, _ := s.Token.Extra("smart_web_messaging_origin").(string)
	return WebMessaging{Handle: h, Origin: o}, h != "" && o != ""
}

// An Envelope is a SMART Web Messaging request or response.
type Envelope struct {
	MessagingHandle             string          `json:"messagingHandle,omitempty"`
	MessageID                   string          `json:"messageId"`
	MessageType                 string          `json:"messageType,omitempty"`
	ResponseToMessageID         string          `json:"responseToMessageId,omitempty"`
	AdditionalResponsesExpected bool            `json:"additionalResponsesExpected,omitempty"`
	Payload                     json.RawMessage `json:"payload"`
}

// ErrMessageOrigin is returned by Accept for a message from another origin
// or with another handle.
var ErrMessageOrigin = errors.New("client: web message from an unexpected origin or handle")

// Accept checks an incoming message the way a receiver must: the event's
// origin equals the EHR origin exactly, and a request carries this handle.
func (wm WebMessaging) Accept(origin string, e Envelope) error {
	if origin != wm.Origin || e.ResponseToMessageID == "" && e.MessagingHandle != wm.Handle {
		return ErrMessageOrigin
	}
	return nil
}

func decodeJSON(r io.Reader, v any) error {
	return json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(v)
}
