import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// Above the graph: the pruning thresholds (live on every move), what they keep, and the scores
// of the graph and of the pinned subgraph.
Rectangle {
    id: bar

    required property ExplorerController explorer

    implicitHeight: rows.implicitHeight + 2 * Theme.spacing
    color: Theme.panelHeader

    component Score: ColumnLayout {
        property string label
        property real value
        property bool shown: true
        property string tip
        spacing: 0
        opacity: shown ? 1 : 0.4
        HoverHandler {
            id: scoreHover
        }
        ToolTip.visible: tip !== "" && scoreHover.hovered
        ToolTip.text: tip
        Label {
            text: parent.label
            color: Theme.textFaint
            font.pointSize: Theme.smallSize - 1
            font.capitalization: Font.AllUppercase
        }
        Label {
            text: parent.shown ? parent.value.toFixed(2) : "–"
            color: Theme.text
            font.family: Theme.monoFamily
            font.pointSize: Theme.baseSize
        }
    }

    RowLayout {
        id: rows
        anchors.fill: parent
        anchors.leftMargin: Theme.padding
        anchors.rightMargin: Theme.padding
        spacing: Theme.padding

        Label {
            text: "Nodes"
            color: Theme.textMuted
        }
        Slider {
            id: nodeSlider
            objectName: "nodeThresholdSlider"
            Layout.preferredWidth: 130
            from: 0.05
            to: 1
            stepSize: 0.01
            live: true
            value: bar.explorer.nodeThreshold
            onMoved: bar.explorer.nodeThreshold = value
            onPressedChanged: if (!pressed) bar.explorer.endGesture()
            ToolTip.visible: hovered
            ToolTip.text: "Node threshold: keep the nodes holding this share of the influence on the logits"
        }
        Label {
            text: bar.explorer.nodeThreshold.toFixed(2)
            font.family: Theme.monoFamily
            color: Theme.text
        }
        Label {
            text: "Edges"
            color: Theme.textMuted
        }
        Slider {
            objectName: "edgeThresholdSlider"
            Layout.preferredWidth: 130
            from: 0.05
            to: 1
            stepSize: 0.01
            live: true
            value: bar.explorer.edgeThreshold
            onMoved: bar.explorer.edgeThreshold = value
            onPressedChanged: if (!pressed) bar.explorer.endGesture()
            ToolTip.visible: hovered
            ToolTip.text: "Edge threshold: keep the edges holding this share of the influence"
        }
        Label {
            text: bar.explorer.edgeThreshold.toFixed(2)
            font.family: Theme.monoFamily
            color: Theme.text
        }
        Label {
            objectName: "keptCounts"
            text: bar.explorer.keptNodeCount + " / " + bar.explorer.nodeCount + " nodes · "
                  + bar.explorer.keptEdgeCount + " / " + bar.explorer.edgeCount + " edges"
            color: Theme.textMuted
            font.pointSize: Theme.smallSize
        }
        Item {
            Layout.fillWidth: true
        }
        Score {
            label: "replacement"
            value: bar.explorer.replacementScore
            tip: "Whole graph: the share of the logits' influence that reaches the tokens rather than error nodes"
        }
        Score {
            label: "completeness"
            value: bar.explorer.completenessScore
            tip: "Whole graph, circuit-tracer's completeness: nodes without inputs (errors, embeddings) count as "
                 + "complete, so a graph of error nodes alone scores 0.5"
        }
        Score {
            objectName: "correctedCompletenessScore"
            label: "corrected"
            value: bar.explorer.correctedCompletenessScore
            tip: "Whole graph, completeness over the nodes that have inputs: 0 when the logits read only error "
                 + "nodes, 1 with no error input"
        }
        Score {
            objectName: "meanPathLength"
            label: "mean path"
            value: bar.explorer.meanPathLength
            shown: bar.explorer.meanPathLength > 0
            tip: "Whole graph: the mean length, in edges, of the paths from the tokens to the outputs, weighted by "
                 + "their strength (the paper's path-length metric); " + bar.explorer.pathLengthText
        }
        Score {
            objectName: "prunedReplacementScore"
            label: "pruned repl."
            value: bar.explorer.prunedReplacementScore
            tip: "What the pruned graph explains of the whole: pruned nodes and edges count as unexplained, "
                 + "so harsher pruning can only lower it"
        }
        Score {
            label: "pruned compl."
            value: bar.explorer.prunedCompletenessScore
            tip: "Completeness of the pruned graph against the whole graph (pruned inputs unexplained)"
        }
        Score {
            label: "subgraph repl."
            value: bar.explorer.subgraphReplacementScore
            shown: bar.explorer.pinnedCount > 0
            tip: "What the pinned nodes explain of the whole graph (Neuronpedia's subgraph score, renormalized "
                 + "after merging unpinned features into errors: "
                 + bar.explorer.neuronpediaSubgraphReplacementScore.toFixed(3) + ")"
        }
        Score {
            label: "subgraph compl."
            value: bar.explorer.subgraphCompletenessScore
            shown: bar.explorer.pinnedCount > 0
            tip: "Completeness of the pinned subgraph against the whole graph (Neuronpedia's: "
                 + bar.explorer.neuronpediaSubgraphCompletenessScore.toFixed(3) + ")"
        }
    }
}
